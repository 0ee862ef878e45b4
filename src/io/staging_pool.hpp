// A reusable host buffer that holds a copy of a snapshot's shards while an asynchronous
// save writes them, so that training may change its tensors as soon as save_async returns.
#pragma once

#include <cstdint>
#include <memory>

#include "ckptio/snapshot.hpp"

namespace ckptio::detail {

class StagingPool {
 public:
  // Bytes a staged copy of `snapshot` occupies (the local bytes of every shard, each
  // rounded up to 64 bytes so that every copy starts aligned).
  static std::uint64_t bytes_needed(const Snapshot& snapshot);

  // Copies every shard of `snapshot` into the pool (growing it when needed; never
  // shrinking) and returns a snapshot whose shards point into the pool. The pool must not
  // be staged into again while the returned snapshot is in use.
  Snapshot stage(const Snapshot& snapshot);

  std::uint64_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<std::byte[]> buffer_;
  std::uint64_t capacity_ = 0;
};

}  // namespace ckptio::detail
