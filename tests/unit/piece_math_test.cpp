#include <gtest/gtest.h>

#include "ckptio/error.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail {
namespace {

// Flat row-major index of every element of the blocks, in block order.
std::vector<std::int64_t> flat_indices(const Shape& shape, const std::vector<Block>& blocks) {
  std::vector<std::int64_t> out;
  for (const auto& b : blocks) {
    const std::size_t rank = shape.size();
    std::vector<std::int64_t> idx(rank, 0);
    const std::int64_t n = block_volume(b);
    for (std::int64_t k = 0; k < n; ++k) {
      std::int64_t flat = 0;
      for (std::size_t d = 0; d < rank; ++d) flat = flat * shape[d] + b.offset[d] + idx[d];
      out.push_back(flat);
      for (std::size_t d = rank; d-- > 0;) {
        if (++idx[d] < b.count[d]) break;
        idx[d] = 0;
      }
    }
  }
  return out;
}

TEST(PieceMath, ElementCountAndOverflow) {
  EXPECT_EQ(element_count({}), 1);
  EXPECT_EQ(element_count({3, 0, 5}), 0);
  EXPECT_EQ(element_count({2, 3, 4}), 24);
  EXPECT_THROW(element_count({1LL << 40, 1LL << 40}), UsageError);
  EXPECT_THROW(element_count({-1}), UsageError);
}

// Every flat range of several shapes decomposes into blocks that enumerate exactly the
// range, in order: the property the writer and reader rely on.
TEST(PieceMath, FlatRangeDecompositionIsExactForAllRanges) {
  const std::vector<Shape> shapes = {{7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {1, 6}, {4, 1}};
  for (const auto& shape : shapes) {
    const std::int64_t total = element_count(shape);
    for (std::int64_t b = 0; b <= total; ++b)
      for (std::int64_t e = b; e <= total; ++e) {
        const auto blocks = flat_range_to_blocks(shape, b, e);
        EXPECT_LE(blocks.size(), 2 * shape.size()) << shape_to_string(shape);
        const auto got = flat_indices(shape, blocks);
        ASSERT_EQ(got.size(), static_cast<std::size_t>(e - b)) << shape_to_string(shape) << " " << b << ".." << e;
        for (std::int64_t k = 0; k < e - b; ++k)
          ASSERT_EQ(got[k], b + k) << shape_to_string(shape) << " " << b << ".." << e;
      }
  }
}

TEST(PieceMath, ScalarFlatRange) {
  const auto blocks = flat_range_to_blocks({}, 0, 1);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(blocks[0].offset.empty());
  EXPECT_EQ(block_volume(blocks[0]), 1);
}

TEST(PieceMath, SegmentsCarryMemoryOffsets) {
  float dummy[100];
  const auto segs = segments_of(TensorShard::flat(dummy, DType::F32, {4, 5}, 3, 17));
  ASSERT_EQ(segs.size(), 3u);  // row 0 tail, rows 1-2, row 3 head
  EXPECT_EQ(segs[0].memory_offset, 0);
  EXPECT_EQ(segs[1].memory_offset, 2);
  EXPECT_EQ(segs[2].memory_offset, 12);
  EXPECT_EQ(segs[1].block, (Block{{1, 0}, {2, 5}}));
  EXPECT_EQ(segs[2].block, (Block{{3, 0}, {1, 2}}));
}

TEST(PieceMath, PieceProblems) {
  float d[8];
  EXPECT_EQ(piece_problem(TensorShard::block(d, DType::F32, {4, 2}, {2, 0}, {2, 2})), "");
  EXPECT_EQ(piece_problem(TensorShard::block(d, DType::F32, {4, 2}, {3, 0}, {2, 2})),
            "block offset [3, 0] count [2, 2] exceeds global shape [4, 2]");
  EXPECT_EQ(piece_problem(TensorShard::block(d, DType::F32, {4, 2}, {0}, {2})),
            "block offset [0] / count [2] do not match the rank of global shape [4, 2]");
  EXPECT_EQ(piece_problem(TensorShard::flat(d, DType::F32, {4, 2}, 4, 9)),
            "flat range [4, 9) is outside [0, 8) of global shape [4, 2]");
  EXPECT_EQ(piece_problem(TensorShard::flat(static_cast<void*>(nullptr), DType::F32, {4}, 0, 2)),
            "data pointer is null");
  EXPECT_EQ(piece_problem(TensorShard::flat(static_cast<void*>(nullptr), DType::F32, {4}, 2, 2)), "");
}

TEST(PieceMath, Coverage) {
  const Shape shape = {4, 4};
  EXPECT_EQ(covered_elements(shape, {Block{{0, 0}, {2, 4}}, Block{{2, 0}, {2, 4}}}), 16);
  EXPECT_EQ(covered_elements(shape, {Block{{0, 0}, {2, 4}}, Block{{3, 0}, {1, 4}}}), 12);
  // Overlapping: whole tensor plus a block inside it.
  EXPECT_EQ(covered_elements(shape, {Block{{0, 0}, {4, 4}}, Block{{1, 1}, {2, 2}}}), 16);
  EXPECT_EQ(covered_elements(shape, {Block{{0, 0}, {3, 3}}, Block{{1, 1}, {3, 3}}}), 14);
  EXPECT_EQ(covered_elements({}, {Block{}}), 1);
}

}  // namespace
}  // namespace ckptio::detail
