#include "ckptio/shard.hpp"

#include "core/piece_math.hpp"

namespace ckptio {

TensorShard TensorShard::whole(ShardData data, DType dtype, Shape global_shape) {
  Block b;
  b.offset.assign(global_shape.size(), 0);
  b.count = global_shape;
  return TensorShard{data, dtype, std::move(global_shape), std::move(b), kHostMemory};
}

TensorShard TensorShard::block(ShardData data, DType dtype, Shape global_shape, std::vector<std::int64_t> offset,
                               std::vector<std::int64_t> count) {
  return TensorShard{data, dtype, std::move(global_shape), Block{std::move(offset), std::move(count)}, kHostMemory};
}

TensorShard TensorShard::flat(ShardData data, DType dtype, Shape global_shape, std::int64_t begin, std::int64_t end) {
  return TensorShard{data, dtype, std::move(global_shape), FlatRange{begin, end}, kHostMemory};
}

std::int64_t TensorShard::global_elements() const { return detail::element_count(global_shape); }

std::int64_t TensorShard::local_elements() const {
  if (const auto* b = std::get_if<Block>(&piece)) return detail::element_count(b->count);
  const auto& f = std::get<FlatRange>(piece);
  return f.end > f.begin ? f.end - f.begin : 0;
}

}  // namespace ckptio
