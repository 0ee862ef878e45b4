#include "io/staging_pool.hpp"

#include "core/host_memory.hpp"
#include "cuda/memory.hpp"

namespace ckptio::detail {

namespace {

constexpr std::uint64_t kAlignment = 64;

std::uint64_t aligned(std::uint64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

StagingPool::Selection selection(const Snapshot& snapshot, StagingPool::Shards which) {
  StagingPool::Selection out;
  for (const char* group : kGroupNames)
    if (const auto& dict = snapshot.group(group))
      for (const auto& [name, shard] : *dict)
        out.push_back(which == StagingPool::Shards::All || shard.device != kHostMemory);
  return out;
}

}  // namespace

StagingPool::~StagingPool() { cuda::free_host(buffer_, capacity_, pinned_); }

std::uint64_t StagingPool::bytes_needed(const Snapshot& snapshot, Shards which) {
  return bytes_needed(snapshot, selection(snapshot, which));
}

std::uint64_t StagingPool::bytes_needed(const Snapshot& snapshot, const Selection& which) {
  std::uint64_t total = 0;
  std::size_t i = 0;
  for (const char* group : kGroupNames)
    if (const auto& dict = snapshot.group(group))
      for (const auto& [name, shard] : *dict)
        if (which.at(i++)) total += aligned(shard.local_bytes());
  return total;
}

bool StagingPool::has_device_shards(const Snapshot& snapshot) {
  for (const char* group : kGroupNames)
    if (const auto& dict = snapshot.group(group))
      for (const auto& [name, shard] : *dict)
        if (shard.device != kHostMemory) return true;
  return false;
}

void StagingPool::reserve(std::uint64_t bytes) {
  if (bytes <= capacity_) return;
  cuda::free_host(buffer_, capacity_, pinned_);
  buffer_ = nullptr;
  capacity_ = 0;
  buffer_ = cuda::alloc_host(bytes, pinned_, huge_pages_);
  capacity_ = bytes;
  // Now, in one madvise, rather than page by page inside the copies: as fast or faster
  // (docs/PERFORMANCE.md), and reserve_staging moves it out of the training loop. Pinned
  // memory is resident already.
  if (!pinned_) fault_in_pages(buffer_, bytes);
}

// A copy of `snapshot` in which every selected shard points at the next slot of the pool;
// place(shard, slot) fills the slot.
template <class Place>
Snapshot StagingPool::rebind(const Snapshot& snapshot, const Selection& which, Place&& place) {
  reserve(bytes_needed(snapshot, which));
  auto* cursor = static_cast<std::byte*>(buffer_);
  Snapshot out;
  out.running = snapshot.running;
  out.rank_blob = snapshot.rank_blob;
  std::optional<StateDict>* out_groups[] = {&out.model, &out.optimizer, &out.ema};
  std::size_t i = 0;
  for (int g = 0; g < 3; ++g) {
    const auto& dict = snapshot.group(kGroupNames[g]);
    if (!dict) continue;
    StateDict copy;
    for (const auto& [name, shard] : *dict) {
      TensorShard rebound = shard;
      if (which.at(i++)) {
        place(shard, cursor);
        rebound.data = cursor;
        rebound.device = kHostMemory;
        cursor += aligned(shard.local_bytes());
      }
      copy.add(name, std::move(rebound));
    }
    *out_groups[g] = std::move(copy);
  }
  return out;
}

Snapshot StagingPool::stage(const Snapshot& snapshot, Shards which) {
  return stage(snapshot, selection(snapshot, which));
}

Snapshot StagingPool::stage(const Snapshot& snapshot, const Selection& which) {
  return rebind(snapshot, which, [](const TensorShard& shard, std::byte* slot) {
    const std::uint64_t bytes = shard.local_bytes();
    if (bytes == 0 || !shard.data) return;
    if (shard.device == kHostMemory)
      copy_streaming(slot, shard.data.get(), bytes);  // the I/O thread reads it back from memory anyway
    else
      cuda::copy_device_to_host(slot, shard.data.get(), bytes, shard.device);
  });
}

Snapshot StagingPool::stage_device_shards(const Snapshot& snapshot, const Selection& which) {
  return rebind(snapshot, which, [](const TensorShard& shard, std::byte* slot) {
    const std::uint64_t bytes = shard.local_bytes();
    if (bytes == 0 || !shard.data || shard.device == kHostMemory) return;
    cuda::copy_device_to_host(slot, shard.data.get(), bytes, shard.device);
  });
}

Snapshot StagingPool::host_targets(const Snapshot& targets) {
  return rebind(targets, selection(targets, Shards::DeviceOnly), [](const TensorShard&, std::byte*) {});
}

void StagingPool::copy_to_device(const Snapshot& targets, const Snapshot& host_targets) const {
  for (const char* group : kGroupNames) {
    const auto& dict = targets.group(group);
    if (!dict) continue;
    const auto& host_dict = *host_targets.group(group);
    for (const auto& [name, shard] : *dict) {
      if (shard.device == kHostMemory || shard.local_bytes() == 0) continue;
      cuda::copy_host_to_device(shard.data.writable(), host_dict.find(name)->data.get(), shard.local_bytes(),
                                shard.device);
    }
  }
}

}  // namespace ckptio::detail
