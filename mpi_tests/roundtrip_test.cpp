// Save and load on the same ranks with the same split: every dtype, scalars, empty
// tensors, zero-sized pieces, 2-D and 3-D block splits, flat ranges; running state and
// per-rank blobs. Every byte must come back.
#include <gtest/gtest.h>

#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

std::vector<TensorSpec> every_dtype_specs() {
  std::vector<TensorSpec> specs;
  const Layout layouts[] = {Layout::Replicated, Layout::Dim0Blocks, Layout::Flat, Layout::SkewedFlat};
  int i = 0;
  for (DType d : kAllDTypes) {
    for (Layout l : layouts)
      specs.push_back({"model", std::string(dtype_name(d)) + "." + layout_name(l), d, {5, 3}, l});
    specs.push_back(
        {"optimizer", std::string(dtype_name(d)) + ".scalar", d, {}, i % 2 ? Layout::Replicated : Layout::Flat});
    ++i;
  }
  return specs;
}

TEST(RoundTrip, EveryDTypeBitExactInEveryLayout) {
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  TestState state(every_dtype_specs(), rank, ranks);
  state.fill();
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    state.snapshot().running.epoch = 2;
    state.snapshot().running.global_step = 40;
    const auto path = io.save(state.snapshot());
    EXPECT_EQ(path, dir.path() / "epoch2-global_step40.h5");
    EXPECT_TRUE(std::filesystem::exists(path));
    state.poison();
    const LoadResult r = io.load(path, state.snapshot());
    EXPECT_EQ(r.running.global_step, 40);
    EXPECT_EQ(r.running.epoch, 2);
  }
  EXPECT_EQ(state.check(), "");
}

TEST(RoundTrip, ShapesAndSplits) {
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  const std::vector<TensorSpec> specs = {
      {"model", "empty.2d", DType::F32, {0, 4}, Layout::Dim1Blocks},
      {"model", "empty.1d", DType::I64, {0}, Layout::Flat},
      {"model", "rows.uneven", DType::F32, {7, 5}, Layout::Dim0Blocks},
      {"model", "cols", DType::F64, {4, 9}, Layout::Dim1Blocks},
      {"model", "cube.dim1", DType::BF16, {3, 5, 4}, Layout::Dim1Blocks},
      {"model", "cube.last", DType::I16, {3, 5, 7}, Layout::LastDimBlocks},
      {"model", "cube.flat", DType::F16, {3, 5, 7}, Layout::Flat},
      {"model", "tiny.skewed", DType::U8, {2}, Layout::SkewedDim0},  // most ranks hold nothing
      {"optimizer", "exp_avg", DType::F32, {13, 11}, Layout::SkewedFlat},
      {"ema", "bias", DType::F32, {1}, Layout::Replicated},
      {"ema", "4d", DType::U32, {2, 3, 1, 5}, Layout::Flat},
  };
  TestState state(specs, rank, ranks);
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(state.snapshot());
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(RoundTrip, RunningStateAndRankBlobs) {
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  TestState state({{"model", "w", DType::F32, {4}, Layout::Replicated}}, rank, ranks);
  state.fill();
  Snapshot& s = state.snapshot();
  s.running.epoch = 3;
  s.running.step = 17;
  s.running.global_step = 1234;
  s.running.lr_scheduler = {{"name", "cosine"}, {"last_epoch", 1234}, {"base_lrs", {0.001, 0.002}}};
  s.running.sampler = {{"seed", 42}, {"position", 17}, {"unicode", "\u00e9t\u00e9"}};
  s.running.extras = {{"note", "hello"}, {"big", 1ull << 62}};
  s.rank_blob.assign(static_cast<std::size_t>(10 + 3 * rank), static_cast<std::uint8_t>(rank + 1));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(s);
  const LoadResult r = io.load(path, s);
  EXPECT_EQ(r.running.epoch, 3);
  EXPECT_EQ(r.running.step, 17);
  EXPECT_EQ(r.running.global_step, 1234);
  EXPECT_EQ(r.running.lr_scheduler, s.running.lr_scheduler);
  EXPECT_EQ(r.running.sampler, s.running.sampler);
  EXPECT_EQ(r.running.extras, s.running.extras);
  EXPECT_EQ(r.rank_blob, s.rank_blob);
  EXPECT_TRUE(r.saved_rank_blobs.empty());
  EXPECT_EQ(r.saved_world_size, ranks);
  EXPECT_EQ(r.path, path.string());
}

// A tensor only the last rank holds, one only rank 0 holds, and ranks with no tensors at
// all: every rank still takes part in the collective save and load.
TEST(RoundTrip, TensorsHeldBySomeRanksOnly) {
  SharedTempDir dir;
  const int rank = world_rank(), last = world_size() - 1;
  std::vector<double> a(6), b(3);
  for (int i = 0; i < 6; ++i) a[i] = i * 1.5;
  for (int i = 0; i < 3; ++i) b[i] = -i;
  Snapshot s;
  s.model.emplace();
  if (rank == last) s.model->add("only_last", TensorShard::whole(a.data(), DType::F64, {2, 3}));
  if (rank == 0) s.model->add("only_first", TensorShard::whole(b.data(), DType::F64, {3}));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(s);
  std::vector<double> a2(6, 0), b2(3, 0);
  Snapshot t;
  t.model.emplace().add("only_last", TensorShard::whole(a2.data(), DType::F64, {2, 3}));
  t.model->add("only_first", TensorShard::whole(b2.data(), DType::F64, {3}));
  io.load(path, t);
  EXPECT_EQ(a2, a);
  EXPECT_EQ(b2, b);
}

TEST(RoundTrip, SnapshotWithoutTensors) {
  SharedTempDir dir;
  Snapshot s;
  s.running.global_step = 5;
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(s);
  const LoadResult r = io.load(path, Snapshot{});
  EXPECT_EQ(r.running.global_step, 5);
}

TEST(RoundTrip, LoadsThroughRootFileNameAndLatest) {
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {6, 2}, Layout::Dim0Blocks}}, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 10;
  io.save(state.snapshot());
  EXPECT_EQ(io.latest(), dir.path() / "epoch0-global_step10.h5");
  for (const std::filesystem::path p :
       {dir.path(), std::filesystem::path("epoch0-global_step10.h5"), dir.path() / "epoch0-global_step10.h5"}) {
    state.poison();
    EXPECT_EQ(io.load(p, state.snapshot()).running.global_step, 10) << p;
    EXPECT_EQ(state.check(), "") << p;
  }
  state.poison();
  auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 10);
  EXPECT_EQ(state.check(), "");
}

}  // namespace
}  // namespace ckptio::test
