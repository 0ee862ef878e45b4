#include "io/staging_pool.hpp"

#include <cstring>

namespace ckptio::detail {

namespace {

constexpr std::uint64_t kAlignment = 64;

std::uint64_t aligned(std::uint64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

std::uint64_t StagingPool::bytes_needed(const Snapshot& snapshot) {
  std::uint64_t total = 0;
  for (const char* group : kGroupNames)
    if (const auto& dict = snapshot.group(group))
      for (const auto& [name, shard] : *dict) total += aligned(shard.local_bytes());
  return total;
}

Snapshot StagingPool::stage(const Snapshot& snapshot) {
  const std::uint64_t needed = bytes_needed(snapshot);
  if (needed > capacity_) {
    // operator new[] of std::byte is aligned to __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16);
    // over-allocate so that the first copy can start on a 64-byte boundary.
    buffer_.reset();
    buffer_ = std::make_unique_for_overwrite<std::byte[]>(needed + kAlignment);
    capacity_ = needed;
  }
  auto base = reinterpret_cast<std::uintptr_t>(buffer_.get());
  std::byte* cursor = buffer_.get() + (aligned(base) - base);

  Snapshot staged;
  staged.running = snapshot.running;
  staged.rank_blob = snapshot.rank_blob;
  std::optional<StateDict>* out_groups[] = {&staged.model, &staged.optimizer, &staged.ema};
  for (int g = 0; g < 3; ++g) {
    const auto& dict = snapshot.group(kGroupNames[g]);
    if (!dict) continue;
    StateDict copy;
    for (const auto& [name, shard] : *dict) {
      // Device shards are refused before staging (save_async checks every shard first).
      TensorShard staged_shard = shard;
      const std::uint64_t bytes = shard.local_bytes();
      if (bytes > 0 && shard.data != nullptr) std::memcpy(cursor, shard.data, bytes);
      staged_shard.data = cursor;
      cursor += aligned(bytes);
      copy.add(name, std::move(staged_shard));
    }
    *out_groups[g] = std::move(copy);
  }
  return staged;
}

}  // namespace ckptio::detail
