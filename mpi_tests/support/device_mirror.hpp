// Device copies of a TestState's shards (same pieces, same names) on one CUDA device, for the
// tests of device tensors; freed on destruction. Only usable where a device is (callers skip
// otherwise).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "cuda/memory.hpp"

namespace ckptio::test {

class DeviceMirror {
 public:
  DeviceMirror(const Snapshot& host, int device) : device_(device) {
    mirrored_ = host;
    std::optional<StateDict>* groups[] = {&mirrored_.model, &mirrored_.optimizer, &mirrored_.ema};
    for (auto* group : groups) {
      if (!*group) continue;
      StateDict dict;
      for (const auto& [name, shard] : **group) {
        TensorShard d = shard;
        d.data = detail::cuda::alloc_device(shard.local_bytes(), device);
        d.device = device;
        buffers_.push_back(d.data.writable());
        dict.add(name, d);
      }
      *group = std::move(dict);
    }
  }
  ~DeviceMirror() {
    for (void* p : buffers_) detail::cuda::free_device(p, device_);
  }
  DeviceMirror(const DeviceMirror&) = delete;
  DeviceMirror& operator=(const DeviceMirror&) = delete;

  // Copies between the host state and the device mirror, shard by shard.
  void upload(const Snapshot& host) { copy(host, true); }
  void download(const Snapshot& host) { copy(host, false); }
  const Snapshot& snapshot() const { return mirrored_; }

 private:
  void copy(const Snapshot& host, bool to_device) {
    for (const char* group : kGroupNames) {
      if (!host.group(group)) continue;
      for (const auto& [name, shard] : *host.group(group)) {
        const TensorShard* d = mirrored_.group(group)->find(name);
        if (to_device)
          detail::cuda::copy_host_to_device(d->data.writable(), shard.data.get(), shard.local_bytes(), device_);
        else
          detail::cuda::copy_device_to_host(shard.data.writable(), d->data.get(), shard.local_bytes(), device_);
      }
    }
  }
  int device_;
  Snapshot mirrored_;
  std::vector<void*> buffers_;
};

}  // namespace ckptio::test
