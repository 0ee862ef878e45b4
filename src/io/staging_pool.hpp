// A reusable host buffer (page-locked when a GPU is usable) that holds a host copy of a
// snapshot's shards: for an asynchronous save, the shards this rank writes, so that training
// may change its tensors as soon as save_async returns; only the shards in CUDA device memory
// for a synchronous save or a load, which HDF5 can only read from and write to host memory.
#pragma once

#include <cstdint>
#include <vector>

#include "ckptio/snapshot.hpp"

namespace ckptio::detail {

class StagingPool {
 public:
  enum class Shards { All, DeviceOnly };
  // Per shard, in the snapshot's order (model, optimizer, ema; each in its order): staged?
  using Selection = std::vector<bool>;

  StagingPool() = default;
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // Bytes the staged copies of `which` shards of `snapshot` occupy (each rounded up to 64
  // bytes so that every copy starts aligned).
  static std::uint64_t bytes_needed(const Snapshot& snapshot, Shards which);
  static std::uint64_t bytes_needed(const Snapshot& snapshot, const Selection& which);
  static bool has_device_shards(const Snapshot& snapshot);

  // Copies `which` shards into the pool (device shards with a device-to-host copy; the
  // pool grows when needed and never shrinks) and returns a snapshot whose shards point
  // into the pool; the others keep pointing at the caller's memory. The pool must not be
  // staged into again while the returned snapshot is in use.
  Snapshot stage(const Snapshot& snapshot, Shards which);
  Snapshot stage(const Snapshot& snapshot, const Selection& which);
  // Like stage(), but copies only the selected device shards: the slots of the selected host
  // shards are left as they are, for a caller that fills them itself (save_async copies the
  // pieces it writes and checksums them in the same pass).
  Snapshot stage_device_shards(const Snapshot& snapshot, const Selection& which);

  // For a load into device memory: a snapshot like `targets` whose device shards are
  // replaced by (uninitialised) host buffers of the pool; after the load,
  // copy_to_device() copies them into the device shards of `targets`.
  Snapshot host_targets(const Snapshot& targets);
  void copy_to_device(const Snapshot& targets, const Snapshot& host_targets) const;

  // Grows the pool to at least `bytes` (it never shrinks) and faults its pages in, so that
  // the next stage() of up to `bytes` neither allocates nor takes page faults. Ordinary
  // (unpinned) pools are 2 MiB aligned (core/host_memory.hpp).
  void reserve(std::uint64_t bytes);
  // Ask for transparent huge pages (MADV_HUGEPAGE) for ordinary memory allocated from now on.
  void set_huge_pages(bool huge_pages) { huge_pages_ = huge_pages; }

  std::uint64_t capacity() const { return capacity_; }
  bool pinned() const { return pinned_; }

 private:
  template <class Place>
  Snapshot rebind(const Snapshot& snapshot, const Selection& which, Place&& place);

  void* buffer_ = nullptr;
  bool pinned_ = false;
  bool huge_pages_ = false;
  std::uint64_t capacity_ = 0;
};

}  // namespace ckptio::detail
