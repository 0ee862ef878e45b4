// Block and flat-range arithmetic over row-major tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/shard.hpp"

namespace ckptio::detail {

// Product of the dimensions (1 for a scalar). Throws UsageError on a negative dimension or
// on overflow of int64.
std::int64_t element_count(const std::vector<std::int64_t>& dims);

// A rectangular part of a tensor together with where its elements start in the shard's
// memory (in elements). The block's elements are contiguous there, in row-major order.
struct Segment {
  Block block;
  std::int64_t memory_offset = 0;
};

// Describes why a shard's piece does not fit its global shape; empty when it fits.
std::string piece_problem(const TensorShard& shard);

// The shard's piece as segments: one for a block, up to 2*rank-1 for a flat range.
// Zero-element segments are omitted. The shard must be valid (piece_problem empty).
std::vector<Segment> segments_of(const TensorShard& shard);

// Decomposes [begin, end) of the row-major flattening of `shape` into blocks, in flat order,
// each contiguous in flat order.
std::vector<Block> flat_range_to_blocks(const Shape& shape, std::int64_t begin, std::int64_t end);

std::int64_t block_volume(const Block& block);
// The common part of two blocks of the same rank, nullopt when they do not meet.
std::optional<Block> intersect(const Block& a, const Block& b);

// How many elements of `shape` the union of `blocks` covers (see piece_coverage). Exact;
// nullopt for overlapping layouts with more than `max_cells` grid cells.
std::optional<std::int64_t> covered_elements(const Shape& shape, const std::vector<Block>& blocks,
                                             std::int64_t max_cells = 1 << 22);

std::string shape_to_string(const std::vector<std::int64_t>& dims);

}  // namespace ckptio::detail
