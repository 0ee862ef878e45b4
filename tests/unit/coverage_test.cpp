// piece_coverage: exact tilings, holes, overlaps, and agreement with a brute-force count on
// random layouts; linear-time behaviour on 10^5 pieces is measured in bench/ (hostile_scaling).
#include <gtest/gtest.h>

#include <random>

#include "core/coverage.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail {
namespace {

Block whole(const Shape& shape) { return Block{std::vector<std::int64_t>(shape.size(), 0), shape}; }

std::vector<Block> rows(std::int64_t n, std::int64_t cols, std::int64_t pieces) {
  std::vector<Block> out;
  for (std::int64_t p = 0; p < pieces; ++p) {
    const std::int64_t a = n * p / pieces, b = n * (p + 1) / pieces;
    out.push_back(Block{{a, 0}, {b - a, cols}});
  }
  return out;
}

TEST(PieceCoverage, TilingsAreExact) {
  EXPECT_TRUE(piece_coverage(whole({8, 4}), rows(8, 4, 3)).exact);
  // Flat ranges of a 3-D tensor decompose into blocks of several shapes.
  const Shape shape{5, 7, 3};
  std::vector<Block> tiling;
  const std::int64_t cuts[] = {0, 11, 40, 41, 77, 105};
  for (int i = 0; i + 1 < 6; ++i)
    for (auto& b : flat_range_to_blocks(shape, cuts[i], cuts[i + 1])) tiling.push_back(b);
  const auto c = piece_coverage(whole(shape), tiling);
  EXPECT_TRUE(c.exact);
  EXPECT_EQ(c.covered, 105);
  // A 2-D grid of blocks.
  std::vector<Block> grid;
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) grid.push_back(Block{{i * 2, j * 5}, {2, 5}});
  EXPECT_TRUE(piece_coverage(whole({8, 15}), grid).exact);
}

TEST(PieceCoverage, ADuplicatedPieceCannotHideAHole) {
  // Volumes sum to the tensor's, but rows 4..8 are missing.
  auto blocks = rows(8, 4, 2);
  blocks[1] = blocks[0];
  const auto c = piece_coverage(whole({8, 4}), blocks);
  EXPECT_FALSE(c.exact);
  EXPECT_EQ(c.covered, 16);
  EXPECT_TRUE(c.overlaps);
}

TEST(PieceCoverage, OverlapsWithFullCoverage) {
  const std::vector<Block> blocks{{{0, 0}, {6, 4}}, {{4, 0}, {4, 4}}};
  const auto c = piece_coverage(whole({8, 4}), blocks);
  EXPECT_FALSE(c.exact);
  EXPECT_EQ(c.covered, 32);
  EXPECT_TRUE(c.overlaps);
}

TEST(PieceCoverage, HolesAndEdgeCases) {
  const auto hole = piece_coverage(whole({8, 4}), {Block{{0, 0}, {3, 4}}, Block{{4, 0}, {4, 4}}});
  EXPECT_FALSE(hole.exact);
  EXPECT_EQ(hole.covered, 28);
  EXPECT_FALSE(hole.overlaps);
  EXPECT_TRUE(piece_coverage(whole({0, 4}), {}).exact);             // nothing to cover
  EXPECT_TRUE(piece_coverage(Block{}, {Block{}}).exact);            // a scalar, stored once
  EXPECT_FALSE(piece_coverage(Block{}, {Block{}, Block{}}).exact);  // ... or twice
  EXPECT_EQ(piece_coverage(Block{}, {Block{}, Block{}}).covered, 1);
  EXPECT_EQ(piece_coverage(whole({8}), {}).covered, 0);
  // Empty pieces are ignored.
  EXPECT_TRUE(piece_coverage(whole({8}), {Block{{0}, {8}}, Block{{3}, {0}}}).exact);
  // A block within a sub-range (the load's requested block).
  EXPECT_TRUE(piece_coverage(Block{{2, 1}, {3, 2}}, {Block{{2, 1}, {1, 2}}, Block{{3, 1}, {2, 2}}}).exact);
}

// Brute force: how often each element is covered.
PieceCoverage brute(const Shape& shape, const std::vector<Block>& blocks) {
  const std::int64_t n = element_count(shape);
  std::vector<int> count(static_cast<std::size_t>(n), 0);
  for (const auto& b : blocks)
    for (std::int64_t f = 0; f < n; ++f) {
      std::int64_t rest = f;
      bool inside = true;
      for (std::size_t d = shape.size(); d-- > 0;) {
        const std::int64_t i = rest % shape[d];
        rest /= shape[d];
        inside = inside && i >= b.offset[d] && i < b.offset[d] + b.count[d];
      }
      if (inside) ++count[static_cast<std::size_t>(f)];
    }
  PieceCoverage c;
  std::int64_t covered = 0;
  for (int k : count) {
    covered += k > 0;
    c.overlaps = c.overlaps || k > 1;
  }
  c.covered = covered;
  c.exact = !c.overlaps && covered == n;
  return c;
}

TEST(PieceCoverage, AgreesWithBruteForceOnRandomLayouts) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 400; ++trial) {
    const std::size_t rank = 1 + rng() % 3;
    Shape shape;
    for (std::size_t d = 0; d < rank; ++d) shape.push_back(1 + rng() % 5);
    std::vector<Block> blocks;
    if (trial % 2 == 0) {  // a random flat tiling, sometimes damaged
      std::int64_t at = 0;
      const std::int64_t n = element_count(shape);
      while (at < n) {
        const std::int64_t next = std::min<std::int64_t>(n, at + 1 + rng() % 6);
        for (auto& b : flat_range_to_blocks(shape, at, next)) blocks.push_back(b);
        at = next;
      }
      if (trial % 4 == 0 && !blocks.empty()) blocks[rng() % blocks.size()] = blocks[rng() % blocks.size()];
    } else {
      const int pieces = static_cast<int>(rng() % 5);
      for (int p = 0; p < pieces; ++p) {
        Block b;
        for (std::size_t d = 0; d < rank; ++d) {
          const std::int64_t o = rng() % shape[d];
          b.offset.push_back(o);
          b.count.push_back(1 + rng() % (shape[d] - o));
        }
        blocks.push_back(b);
      }
    }
    const auto want = brute(shape, blocks);
    const auto got = piece_coverage(whole(shape), blocks);
    ASSERT_EQ(got.exact, want.exact) << "trial " << trial;
    ASSERT_EQ(got.covered, want.covered) << "trial " << trial;
    ASSERT_EQ(got.overlaps, want.overlaps) << "trial " << trial;
  }
}

TEST(PieceCoverage, ManyPiecesOfAFlatTiling) {
  // 10^5 flat ranges of a 2-D tensor: the layout that took minutes with pairwise checks.
  const Shape shape{1000, 1003};
  const std::int64_t n = element_count(shape);
  std::vector<Block> blocks;
  for (std::int64_t p = 0; p < 100'000; ++p)
    for (auto& b : flat_range_to_blocks(shape, n * p / 100'000, n * (p + 1) / 100'000)) blocks.push_back(b);
  EXPECT_TRUE(piece_coverage(whole(shape), blocks).exact);
  blocks.pop_back();
  const auto c = piece_coverage(whole(shape), blocks);
  EXPECT_FALSE(c.exact);
}

TEST(PieceCoverage, CoveredElementsUsesIt) {
  EXPECT_EQ(covered_elements({8, 4}, rows(8, 4, 4)), 32);
  EXPECT_EQ(covered_elements({8, 4}, {Block{{0, 0}, {4, 4}}, Block{{0, 0}, {4, 4}}}), 16);
}

}  // namespace
}  // namespace ckptio::detail
