// ckptio: a rank's non-owning view of its part of a global tensor.
#pragma once

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

// A rank's view of its part of one global tensor. Non-owning: `data` must stay valid for
// the duration of the save or load call that uses it. For save the memory is read, for
// load it is written.
struct TensorShard {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape global_shape;  // empty for a scalar
  Piece piece;
  int device = kHostMemory;

  // The whole tensor (a replicated tensor: every replica passes the whole of it).
  static TensorShard whole(void* data, DType dtype, Shape global_shape);
  static TensorShard whole(const void* data, DType dtype, Shape global_shape) {
    return whole(const_cast<void*>(data), dtype, std::move(global_shape));
  }
  // A block: offset and count per dimension.
  static TensorShard block(void* data, DType dtype, Shape global_shape, std::vector<std::int64_t> offset,
                           std::vector<std::int64_t> count);
  static TensorShard block(const void* data, DType dtype, Shape global_shape, std::vector<std::int64_t> offset,
                           std::vector<std::int64_t> count) {
    return block(const_cast<void*>(data), dtype, std::move(global_shape), std::move(offset), std::move(count));
  }
  // A flat range [begin, end) of the row-major flattened tensor.
  static TensorShard flat(void* data, DType dtype, Shape global_shape, std::int64_t begin, std::int64_t end);
  static TensorShard flat(const void* data, DType dtype, Shape global_shape, std::int64_t begin, std::int64_t end) {
    return flat(const_cast<void*>(data), dtype, std::move(global_shape), begin, end);
  }

  // Number of elements of the global tensor (1 for a scalar).
  std::int64_t global_elements() const;
  // Number of elements this shard holds.
  std::int64_t local_elements() const;
  // Bytes this shard holds.
  std::uint64_t local_bytes() const { return static_cast<std::uint64_t>(local_elements()) * dtype_size(dtype); }
};

}  // namespace ckptio
