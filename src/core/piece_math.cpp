#include "core/piece_math.hpp"

#include <algorithm>
#include <limits>

#include "ckptio/error.hpp"
#include "core/coverage.hpp"

namespace ckptio::detail {

std::int64_t element_count(const std::vector<std::int64_t>& dims) {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 0) throw UsageError("negative dimension in shape " + shape_to_string(dims));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
      throw UsageError("shape " + shape_to_string(dims) + " has too many elements");
    n *= d;
  }
  return n;
}

std::string shape_to_string(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

std::string piece_problem(const TensorShard& shard) {
  for (auto d : shard.global_shape)
    if (d < 0) return "global shape " + shape_to_string(shard.global_shape) + " has a negative dimension";
  std::int64_t total;
  try {
    total = element_count(shard.global_shape);
  } catch (const Error& e) {
    return e.what();
  }
  if (const auto* b = std::get_if<Block>(&shard.piece)) {
    if (b->offset.size() != shard.global_shape.size() || b->count.size() != shard.global_shape.size())
      return "block offset " + shape_to_string(b->offset) + " / count " + shape_to_string(b->count) +
             " do not match the rank of global shape " + shape_to_string(shard.global_shape);
    for (std::size_t i = 0; i < b->offset.size(); ++i) {
      if (b->offset[i] < 0 || b->count[i] < 0 || b->offset[i] > shard.global_shape[i] ||
          b->count[i] > shard.global_shape[i] - b->offset[i])
        return "block offset " + shape_to_string(b->offset) + " count " + shape_to_string(b->count) +
               " exceeds global shape " + shape_to_string(shard.global_shape);
    }
  } else {
    const auto& f = std::get<FlatRange>(shard.piece);
    if (f.begin < 0 || f.end < f.begin || f.end > total)
      return "flat range [" + std::to_string(f.begin) + ", " + std::to_string(f.end) + ") is outside [0, " +
             std::to_string(total) + ") of global shape " + shape_to_string(shard.global_shape);
  }
  if (!shard.data && shard.local_elements() > 0) return "data pointer is null";
  return {};
}

namespace {

// Appends the blocks of [begin, end) within the sub-tensor at dimension `dim`, whose leading
// coordinates are fixed by `prefix`.
void decompose(const Shape& shape, std::size_t dim, std::vector<std::int64_t>& prefix, std::int64_t begin,
               std::int64_t end, std::vector<Block>& out) {
  if (begin >= end) return;
  const std::size_t rank = shape.size();
  auto make_block = [&](std::int64_t first, std::int64_t rows) {
    Block b;
    b.offset = prefix;
    b.count.assign(prefix.size(), 1);
    b.offset.push_back(first);
    b.count.push_back(rows);
    for (std::size_t d = dim + 1; d < rank; ++d) {
      b.offset.push_back(0);
      b.count.push_back(shape[d]);
    }
    out.push_back(std::move(b));
  };
  if (dim + 1 == rank) {
    make_block(begin, end - begin);
    return;
  }
  std::int64_t inner = 1;
  for (std::size_t d = dim + 1; d < rank; ++d) inner *= shape[d];
  const std::int64_t first_row = begin / inner;
  const std::int64_t last_row = (end - 1) / inner;
  if (first_row == last_row && (begin % inner != 0 || end % inner != 0)) {
    prefix.push_back(first_row);
    decompose(shape, dim + 1, prefix, begin - first_row * inner, end - first_row * inner, out);
    prefix.pop_back();
    return;
  }
  std::int64_t full_begin = first_row;
  if (begin % inner != 0) {
    prefix.push_back(first_row);
    decompose(shape, dim + 1, prefix, begin % inner, inner, out);
    prefix.pop_back();
    full_begin = first_row + 1;
  }
  const std::int64_t full_end = end / inner;
  if (full_end > full_begin) make_block(full_begin, full_end - full_begin);
  if (end % inner != 0) {
    prefix.push_back(full_end);
    decompose(shape, dim + 1, prefix, 0, end % inner, out);
    prefix.pop_back();
  }
}

}  // namespace

std::vector<Block> flat_range_to_blocks(const Shape& shape, std::int64_t begin, std::int64_t end) {
  std::vector<Block> out;
  if (begin >= end) return out;
  if (shape.empty()) {  // a scalar: the only element
    out.push_back(Block{});
    return out;
  }
  std::vector<std::int64_t> prefix;
  decompose(shape, 0, prefix, begin, end, out);
  return out;
}

std::int64_t block_volume(const Block& block) {
  std::int64_t n = 1;
  for (auto c : block.count) n *= c;
  return n;
}

std::vector<Segment> segments_of(const TensorShard& shard) {
  std::vector<Segment> out;
  if (const auto* b = std::get_if<Block>(&shard.piece)) {
    if (block_volume(*b) > 0) out.push_back(Segment{*b, 0});
    return out;
  }
  const auto& f = std::get<FlatRange>(shard.piece);
  std::int64_t offset = 0;
  for (auto& blk : flat_range_to_blocks(shard.global_shape, f.begin, f.end)) {
    const std::int64_t v = block_volume(blk);
    out.push_back(Segment{std::move(blk), offset});
    offset += v;
  }
  return out;
}

std::optional<Block> intersect(const Block& a, const Block& b) {
  Block r;
  for (std::size_t i = 0; i < a.offset.size(); ++i) {
    const std::int64_t lo = std::max(a.offset[i], b.offset[i]);
    const std::int64_t hi = std::min(a.offset[i] + a.count[i], b.offset[i] + b.count[i]);
    if (hi <= lo) return std::nullopt;
    r.offset.push_back(lo);
    r.count.push_back(hi - lo);
  }
  return r;
}

std::optional<std::int64_t> covered_elements(const Shape& shape, const std::vector<Block>& blocks,
                                             std::int64_t max_cells) {
  const Block whole{std::vector<std::int64_t>(shape.size(), 0), shape};
  return piece_coverage(whole, blocks, max_cells).covered;
}

}  // namespace ckptio::detail
