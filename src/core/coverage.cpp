#include "core/coverage.hpp"

#include <algorithm>
#include <bit>
#include <numeric>

#include "core/piece_math.hpp"

namespace ckptio::detail {
namespace {

// Corners (or difference-array updates) at most this many: 2^k per block.
constexpr std::uint64_t kMaxCorners = std::uint64_t{1} << 24;

// The blocks that hold elements, and the dimensions in which some of them do not span
// `whole` (only those dimensions matter: the others are the same for every block).
struct Reduced {
  std::vector<const Block*> blocks;
  std::vector<std::size_t> dims;
};

Reduced reduce(const Block& whole, const std::vector<Block>& blocks) {
  Reduced r;
  for (const auto& b : blocks)
    if (block_volume(b) > 0) r.blocks.push_back(&b);
  for (std::size_t d = 0; d < whole.count.size(); ++d) {
    const bool spanned = std::all_of(r.blocks.begin(), r.blocks.end(), [&](const Block* b) {
      return b->offset[d] == whole.offset[d] && b->count[d] == whole.count[d];
    });
    if (!spanned) r.dims.push_back(d);
  }
  return r;
}

// Whether the corners' signed sums equal those of `whole`; nullopt when there are too many
// corners to sort.
std::optional<bool> tiles_exactly(const Block& whole, const Reduced& r) {
  const std::size_t k = r.dims.size();
  if (k >= 24) return std::nullopt;
  const std::uint64_t per_block = std::uint64_t{1} << k;
  if ((r.blocks.size() + 1) > kMaxCorners / per_block) return std::nullopt;
  const std::size_t corners = (r.blocks.size() + 1) * per_block;
  std::vector<std::int64_t> coords(corners * k);
  std::vector<std::int8_t> sign(corners);
  std::size_t next = 0;
  auto add_corners = [&](const Block& b, int block_sign) {
    for (std::uint64_t mask = 0; mask < per_block; ++mask, ++next) {
      for (std::size_t i = 0; i < k; ++i) {
        const std::size_t d = r.dims[i];
        coords[next * k + i] = (mask >> i & 1) ? b.offset[d] + b.count[d] : b.offset[d];
      }
      sign[next] = static_cast<std::int8_t>(std::popcount(mask) % 2 ? -block_sign : block_sign);
    }
  };
  add_corners(whole, -1);
  for (const Block* b : r.blocks) add_corners(*b, 1);
  std::vector<std::uint32_t> order(corners);
  std::iota(order.begin(), order.end(), 0u);
  // data() + offset, not &coords[...]: with k = 0 (every block spans `whole`) there are no
  // coordinates at all.
  auto less = [&](std::uint32_t a, std::uint32_t b) {
    const std::int64_t* pa = coords.data() + std::size_t{a} * k;
    const std::int64_t* pb = coords.data() + std::size_t{b} * k;
    return std::lexicographical_compare(pa, pa + k, pb, pb + k);
  };
  std::sort(order.begin(), order.end(), less);
  for (std::size_t i = 0; i < corners;) {
    std::int64_t sum = 0;
    std::size_t j = i;
    for (; j < corners && !less(order[i], order[j]); ++j) sum += sign[order[j]];
    if (sum != 0) return false;
    i = j;
  }
  return true;
}

// Counts covered elements on the grid of the blocks' boundaries with a k-dimensional
// difference array; nullopt when the grid is too large.
std::optional<PieceCoverage> count_on_grid(const Block& whole, const Reduced& r, std::int64_t max_cells) {
  const std::size_t k = r.dims.size();
  if (k >= 24 || r.blocks.size() > kMaxCorners >> k) return std::nullopt;
  std::vector<std::vector<std::int64_t>> cuts(k);
  std::vector<std::size_t> stride(k, 1);
  std::int64_t points = 1;
  for (std::size_t i = 0; i < k; ++i) {
    const std::size_t d = r.dims[i];
    for (const Block* b : r.blocks) {
      cuts[i].push_back(b->offset[d]);
      cuts[i].push_back(b->offset[d] + b->count[d]);
    }
    std::sort(cuts[i].begin(), cuts[i].end());
    cuts[i].erase(std::unique(cuts[i].begin(), cuts[i].end()), cuts[i].end());
    const auto n = static_cast<std::int64_t>(cuts[i].size());
    if (points > max_cells / n) return std::nullopt;
    points *= n;
  }
  for (std::size_t i = k; i-- > 1;) stride[i - 1] = stride[i] * cuts[i].size();
  std::vector<std::int32_t> count(static_cast<std::size_t>(points), 0);
  auto position = [&](std::size_t i, std::int64_t value) {
    return static_cast<std::size_t>(std::lower_bound(cuts[i].begin(), cuts[i].end(), value) - cuts[i].begin());
  };
  for (const Block* b : r.blocks) {
    for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << k); ++mask) {
      std::size_t at = 0;
      for (std::size_t i = 0; i < k; ++i) {
        const std::size_t d = r.dims[i];
        at += stride[i] * position(i, (mask >> i & 1) ? b->offset[d] + b->count[d] : b->offset[d]);
      }
      count[at] += std::popcount(mask) % 2 ? -1 : 1;
    }
  }
  // Prefix sums along each dimension turn the differences into per-cell counts.
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t at = 0; at < count.size(); ++at)
      if (at / stride[i] % cuts[i].size() > 0) count[at] += count[at - stride[i]];
  std::int64_t spanned = 1;  // elements per cell contributed by the dimensions every block spans
  for (std::size_t d = 0; d < whole.count.size(); ++d)
    if (std::find(r.dims.begin(), r.dims.end(), d) == r.dims.end()) spanned *= whole.count[d];
  PieceCoverage result;
  std::int64_t covered = 0;
  for (std::size_t at = 0; at < count.size(); ++at) {
    if (count[at] <= 0) continue;
    std::int64_t volume = spanned;
    for (std::size_t i = 0; i < k && volume > 0; ++i) {
      const std::size_t c = at / stride[i] % cuts[i].size();
      volume = c + 1 < cuts[i].size() ? volume * (cuts[i][c + 1] - cuts[i][c]) : 0;
    }
    if (volume == 0) continue;
    covered += volume;
    if (count[at] > 1) result.overlaps = true;
  }
  result.covered = covered;
  result.exact = !result.overlaps && covered == block_volume(whole);
  return result;
}

}  // namespace

PieceCoverage piece_coverage(const Block& whole, const std::vector<Block>& blocks, std::int64_t max_cells) {
  const std::int64_t total = block_volume(whole);
  if (total == 0) return PieceCoverage{true, 0, false};
  const Reduced r = reduce(whole, blocks);
  if (tiles_exactly(whole, r).value_or(false)) return PieceCoverage{true, total, false};
  if (auto counted = count_on_grid(whole, r, max_cells)) return *counted;
  return PieceCoverage{false, std::nullopt, false};
}

}  // namespace ckptio::detail
