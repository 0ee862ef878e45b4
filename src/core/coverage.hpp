// Whether a set of blocks covers a block exactly, in O(n log n) for the layouts that saves
// make (a tiling), without comparing the blocks pairwise.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ckptio/shard.hpp"

namespace ckptio::detail {

struct PieceCoverage {
  // Every element of the whole is covered exactly once (no hole, no overlap).
  bool exact = false;
  // Elements of the whole covered at least once; nullopt when the blocks overlap in a
  // layout with more than `max_cells` distinct cells, which is not counted.
  std::optional<std::int64_t> covered;
  // Some element is covered more than once (known whenever `covered` is).
  bool overlaps = false;
};

// How `blocks` (each inside `whole`, of the same rank) cover `whole`.
//
// First, a tiling test that is exact and linear in the blocks: a block's indicator function
// has a mixed finite difference that is +1 or -1 at its 2^k corners and 0 elsewhere, so the
// blocks tile `whole` exactly when their signed corners, summed, equal those of `whole`
// (sorting the corners: O(n 2^k log n) for k dimensions that some block does not span).
// Otherwise the elements are counted on the grid of the blocks' boundaries (a k-dimensional
// difference array), when that grid has at most `max_cells` cells.
PieceCoverage piece_coverage(const Block& whole, const std::vector<Block>& blocks, std::int64_t max_cells = 1 << 22);

}  // namespace ckptio::detail
