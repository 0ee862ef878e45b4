#include <gtest/gtest.h>

#include "ckptio/error.hpp"
#include "core/write_plan.hpp"

namespace ckptio::detail {
namespace {

TensorDecl decl(int group, std::string name, Shape shape, std::vector<Block> segments, DType dtype = DType::F32) {
  return TensorDecl{group, std::move(name), dtype, std::move(shape), std::move(segments)};
}

TEST(WritePlan, ReplicatedPiecesAreWrittenOnceAndBalancedByBytes) {
  // 4 ranks, 8 replicated tensors of equal size: each rank writes exactly 2.
  std::vector<std::vector<TensorDecl>> per_rank(4);
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < 8; ++t) per_rank[r].push_back(decl(0, "t" + std::to_string(t), {16}, {Block{{0}, {16}}}));
  const WritePlan plan = make_write_plan(per_rank);
  ASSERT_EQ(plan.tensors.size(), 8u);
  std::vector<int> writes(4, 0);
  for (const auto& t : plan.tensors) {
    ASSERT_EQ(t.pieces.size(), 1u);
    EXPECT_EQ(t.pieces[0].holders, (std::vector<int>{0, 1, 2, 3}));
    ++writes[t.pieces[0].writer];
  }
  EXPECT_EQ(writes, (std::vector<int>{2, 2, 2, 2}));
  EXPECT_EQ(plan.bytes_per_rank, (std::vector<std::uint64_t>{128, 128, 128, 128}));
}

TEST(WritePlan, ShardedPiecesAreWrittenByTheirOwner) {
  std::vector<std::vector<TensorDecl>> per_rank(2);
  per_rank[0].push_back(decl(1, "w", {4, 2}, {Block{{0, 0}, {3, 2}}}));
  per_rank[1].push_back(decl(1, "w", {4, 2}, {Block{{3, 0}, {1, 2}}}));
  const WritePlan plan = make_write_plan(per_rank);
  ASSERT_EQ(plan.tensors.size(), 1u);
  ASSERT_EQ(plan.tensors[0].pieces.size(), 2u);
  EXPECT_EQ(plan.tensors[0].pieces[0].writer, 0);
  EXPECT_EQ(plan.tensors[0].pieces[1].writer, 1);
  EXPECT_EQ(plan.tensors[0].group, 1);
}

TEST(WritePlan, OrderIsGroupThenRankZeroOrderThenOthers) {
  std::vector<std::vector<TensorDecl>> per_rank(2);
  per_rank[0] = {decl(2, "e", {1}, {Block{{0}, {1}}}), decl(0, "b", {1}, {Block{{0}, {1}}}),
                 decl(0, "a", {1}, {Block{{0}, {1}}})};
  per_rank[1] = {decl(0, "only_on_1", {1}, {Block{{0}, {1}}}), decl(0, "a", {1}, {Block{{0}, {1}}})};
  const WritePlan plan = make_write_plan(per_rank);
  std::vector<std::string> names;
  for (const auto& t : plan.tensors) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "a", "only_on_1", "e"}));
}

TEST(WritePlan, DisagreementsAreErrors) {
  std::vector<std::vector<TensorDecl>> per_rank(2);
  per_rank[0] = {decl(0, "w", {4}, {Block{{0}, {4}}})};
  per_rank[1] = {decl(0, "w", {5}, {Block{{0}, {5}}})};
  try {
    make_write_plan(per_rank);
    FAIL();
  } catch (const MismatchError& e) {
    EXPECT_STREQ(e.what(), "tensor model/w has global shape [4] on rank 0 but [5] on rank 1");
  }
  per_rank[1] = {decl(0, "w", {4}, {Block{{0}, {4}}}, DType::F16)};
  try {
    make_write_plan(per_rank);
    FAIL();
  } catch (const MismatchError& e) {
    EXPECT_STREQ(e.what(), "tensor model/w has dtype F32 on rank 0 but F16 on rank 1");
  }
}

TEST(WritePlan, UncoveredElementsAreAnError) {
  std::vector<std::vector<TensorDecl>> per_rank(2);
  per_rank[0] = {decl(0, "w", {4}, {Block{{0}, {2}}})};
  per_rank[1] = {decl(0, "w", {4}, {Block{{3}, {1}}})};
  try {
    make_write_plan(per_rank);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "tensor model/w of shape [4]: the ranks' pieces cover 3 of its 4 elements; every element must be held "
                 "by some rank");
  }
}

// Row blocks are checked without the general count; holes, overlaps and column splits in
// them still give the exact count (or pass when covered).
TEST(WritePlan, CoverageOfRowBlocksAndOtherSplits) {
  auto uncovered = [](std::vector<Block> rank0, std::vector<Block> rank1) -> std::string {
    std::vector<std::vector<TensorDecl>> per_rank(2);
    per_rank[0] = {decl(0, "w", {4, 3}, std::move(rank0))};
    per_rank[1] = {decl(0, "w", {4, 3}, std::move(rank1))};
    try {
      make_write_plan(per_rank);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "covered";
  };
  EXPECT_EQ(uncovered({Block{{0, 0}, {1, 3}}, Block{{1, 0}, {1, 3}}}, {Block{{2, 0}, {2, 3}}}), "covered");
  EXPECT_EQ(uncovered({Block{{0, 0}, {3, 3}}}, {Block{{2, 0}, {2, 3}}}), "covered");  // overlapping rows
  EXPECT_EQ(uncovered({Block{{0, 0}, {4, 2}}}, {Block{{0, 2}, {4, 1}}}), "covered");  // columns
  EXPECT_EQ(uncovered({Block{{0, 0}, {1, 3}}}, {Block{{2, 0}, {2, 3}}}),
            "tensor model/w of shape [4, 3]: the ranks' pieces cover 9 of its 12 elements; every element must be "
            "held by some rank");
  EXPECT_EQ(uncovered({Block{{0, 0}, {2, 3}}}, {Block{{2, 0}, {1, 3}}}),
            "tensor model/w of shape [4, 3]: the ranks' pieces cover 9 of its 12 elements; every element must be "
            "held by some rank");
  EXPECT_EQ(uncovered({Block{{0, 0}, {4, 2}}}, {}),
            "tensor model/w of shape [4, 3]: the ranks' pieces cover 8 of its 12 elements; every element must be "
            "held by some rank");
}

TEST(WritePlan, EmptyTensorNeedsNoPieces) {
  std::vector<std::vector<TensorDecl>> per_rank(2);
  per_rank[0] = {decl(0, "empty", {0, 3}, {})};
  per_rank[1] = {decl(0, "empty", {0, 3}, {})};
  const WritePlan plan = make_write_plan(per_rank);
  ASSERT_EQ(plan.tensors.size(), 1u);
  EXPECT_TRUE(plan.tensors[0].pieces.empty());
}

TEST(WritePlan, DeclarationsSurviveEncoding) {
  std::vector<TensorDecl> d = {decl(2, "x.y", {3, 4}, {Block{{1, 0}, {2, 4}}, Block{{0, 2}, {1, 2}}}, DType::BF16)};
  const auto back = decode_decls(encode_decls(d));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].group, 2);
  EXPECT_EQ(back[0].name, "x.y");
  EXPECT_EQ(back[0].dtype, DType::BF16);
  EXPECT_EQ(back[0].shape, (Shape{3, 4}));
  EXPECT_EQ(back[0].segments, d[0].segments);
}

TEST(WritePlan, DamagedDeclarationsAreFormatErrors) {
  const std::vector<TensorDecl> d = {decl(1, "a", {3, 4}, {Block{{1, 0}, {2, 4}}}, DType::F16),
                                     decl(0, "scalar", {}, {Block{{}, {}}}), decl(2, "empty", {0}, {})};
  const std::string bytes = encode_decls(d);
  const auto back = decode_decls(bytes);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[1].segments, d[1].segments);
  EXPECT_TRUE(back[2].segments.empty());
  EXPECT_TRUE(decode_decls(encode_decls({})).empty());
  for (std::size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(decode_decls(bytes.substr(0, n)), FormatError) << "truncated to " << n << " bytes";
  try {
    decode_decls(bytes + "x");
    ADD_FAILURE() << "trailing bytes accepted";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "tensor declarations: trailing bytes after the encoding");
  }
  std::string bad_dtype = bytes;
  bad_dtype[4 + 4 + 4 + 1] = 99;  // count, group, name length, "a", then dtype
  EXPECT_THROW(decode_decls(bad_dtype), FormatError);
}

TEST(ReadPlan, TensorsAreNamedByIndexPositionAndReplicasReadOnce) {
  // 5 stored tensors; rank 0 asks for rows 0-1 of tensor 1 and all of tensor 3, rank 1 for
  // rows 2-3 of tensor 1 and all of tensor 3 (a replica): tensors 0, 2 and 4 are not planned.
  std::vector<std::vector<StoredRequest>> per_rank(2);
  per_rank[0] = {{3, {Block{{0}, {8}}}}, {1, {Block{{0, 0}, {2, 2}}}}};
  per_rank[1] = {{1, {Block{{2, 0}, {2, 2}}}}, {3, {Block{{0}, {8}}}}};
  std::vector<std::size_t> described;
  const WritePlan plan = make_read_plan(per_rank, 5, [&](std::size_t i, PlannedTensor& t) {
    described.push_back(i);
    t.group = static_cast<int>(i % 3);
    t.dtype = i == 3 ? DType::F64 : DType::F32;
  });
  EXPECT_EQ(described, (std::vector<std::size_t>{1, 3}));
  ASSERT_EQ(plan.tensors.size(), 2u);
  EXPECT_EQ(plan.tensors[0].stored, 1u);
  EXPECT_EQ(plan.tensors[0].group, 1);
  EXPECT_TRUE(plan.tensors[0].name.empty());
  ASSERT_EQ(plan.tensors[0].pieces.size(), 2u);
  EXPECT_EQ(plan.tensors[0].pieces[0].writer, 0);
  EXPECT_EQ(plan.tensors[0].pieces[0].writer_decl, 1);
  EXPECT_EQ(plan.tensors[0].pieces[1].writer, 1);
  EXPECT_EQ(plan.tensors[0].pieces[1].writer_decl, 0);
  EXPECT_EQ(plan.tensors[0].pieces[1].bytes, 16u);
  const auto& replica = plan.tensors[1];
  EXPECT_EQ(replica.stored, 3u);
  EXPECT_EQ(replica.dtype, DType::F64);
  ASSERT_EQ(replica.pieces.size(), 1u);
  EXPECT_EQ(replica.pieces[0].holders, (std::vector<int>{0, 1}));
  EXPECT_EQ(replica.pieces[0].holder_locations, (std::vector<std::pair<int, int>>{{0, 0}, {1, 0}}));
  EXPECT_EQ(replica.pieces[0].bytes, 64u);
  EXPECT_EQ(replica.pieces[0].writer, 0);  // largest first, to the lowest rank on a tie
  EXPECT_EQ(plan.bytes_per_rank, (std::vector<std::uint64_t>{80, 16}));
}

TEST(ReadPlan, RequestsRoundTripAndDamageIsAFormatError) {
  const std::vector<StoredRequest> requests = {
      {7, {Block{{1, 0}, {2, 4}}, Block{{3, 0}, {1, 4}}}}, {0, {Block{{}, {}}}}, {2, {}}};
  const std::string bytes = encode_stored_requests(requests);
  const auto back = decode_stored_requests(bytes, 8);
  ASSERT_EQ(back.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back[i].tensor, requests[i].tensor);
    EXPECT_EQ(back[i].segments, requests[i].segments);
  }
  EXPECT_TRUE(decode_stored_requests(encode_stored_requests({}), 0).empty());
  for (std::size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(decode_stored_requests(bytes.substr(0, n), 8), FormatError) << "truncated to " << n << " bytes";
  try {
    decode_stored_requests(bytes, 7);
    ADD_FAILURE() << "a position beyond the index accepted";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "load requests: tensor 7 beyond the index's 7");
  }
  try {
    decode_stored_requests(bytes + "x", 8);
    ADD_FAILURE() << "trailing bytes accepted";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "load requests: trailing bytes after the encoding");
  }
}

}  // namespace
}  // namespace ckptio::detail
