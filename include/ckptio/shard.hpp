// ckptio: a rank's non-owning view of its part of a global tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "ckptio/dtype.hpp"

namespace ckptio {

using Shape = std::vector<std::int64_t>;

// A hyperslab of the global tensor: offset and count per dimension (tensor parallelism).
// The shard's memory holds the block's elements in row-major order of `count`.
struct Block {
  std::vector<std::int64_t> offset;
  std::vector<std::int64_t> count;
  bool operator==(const Block&) const = default;
};

// A range [begin, end) of the row-major flattened tensor (ZeRO / FSDP flat sharding).
// The shard's memory holds elements begin..end-1 contiguously.
struct FlatRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  bool operator==(const FlatRange&) const = default;
};

using Piece = std::variant<Block, FlatRange>;

// Where a shard's memory lives: host memory, or a CUDA device (device ordinal >= 0).
inline constexpr int kHostMemory = -1;

// A non-owning pointer to a shard's memory that remembers whether the memory may be written.
// Made from `void*` it is writable: save reads it and load writes it. Made from `const void*`
// it is read-only: save reads it, and a load into it is refused with a UsageError. Converts
// implicitly from either pointer, so `shard.data = p` keeps the constness of `p`.
class ShardData {
 public:
  ShardData() = default;
  ShardData(std::nullptr_t) noexcept {}
  ShardData(void* data) noexcept : read_(data), write_(data) {}
  ShardData(const void* data) noexcept : read_(data) {}

  // The memory, for reading (null when none was given).
  const void* get() const noexcept { return read_; }
  // The memory, for writing; null when it is read-only (or none was given).
  void* writable() const noexcept { return write_; }
  // True when memory was given as a pointer to const.
  bool read_only() const noexcept { return read_ != nullptr && write_ == nullptr; }
  explicit operator bool() const noexcept { return read_ != nullptr; }

 private:
  const void* read_ = nullptr;
  void* write_ = nullptr;
};

// A rank's view of its part of one global tensor. Non-owning: the memory must stay valid for
// the duration of the save or load call that uses it. For save the memory is read, for
// load it is written (so a shard for load is made from a pointer to non-const memory).
struct TensorShard {
  ShardData data;
  DType dtype = DType::F32;
  Shape global_shape;  // empty for a scalar
  Piece piece;
  int device = kHostMemory;

  // The whole tensor (a replicated tensor: every replica passes the whole of it).
  static TensorShard whole(ShardData data, DType dtype, Shape global_shape);
  // A block: offset and count per dimension.
  static TensorShard block(ShardData data, DType dtype, Shape global_shape, std::vector<std::int64_t> offset,
                           std::vector<std::int64_t> count);
  // A flat range [begin, end) of the row-major flattened tensor.
  static TensorShard flat(ShardData data, DType dtype, Shape global_shape, std::int64_t begin, std::int64_t end);

  // Number of elements of the global tensor (1 for a scalar).
  std::int64_t global_elements() const;
  // Number of elements this shard holds.
  std::int64_t local_elements() const;
  // Bytes this shard holds.
  std::uint64_t local_bytes() const { return static_cast<std::uint64_t>(local_elements()) * dtype_size(dtype); }
};

}  // namespace ckptio
