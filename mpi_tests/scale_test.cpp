// Scale: many small tensors, a running state larger than an HDF5 attribute may hold, and
// (at 4 ranks) a 1 GiB checkpoint.
#include <gtest/gtest.h>

#include <numeric>

#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

TEST(Scale, TwoThousandSmallTensors) {
  std::vector<TensorSpec> specs;
  const Layout layouts[] = {Layout::Replicated, Layout::Flat, Layout::Dim0Blocks};
  for (int i = 0; i < 2000; ++i)
    specs.push_back({i % 2 ? "model" : "optimizer",
                     "blocks." + std::to_string(i / 10) + ".p" + std::to_string(i % 10),
                     i % 3 ? DType::F32 : DType::BF16,
                     {3 + i % 5, 2},
                     layouts[i % 3]});
  TestState state(specs, world_rank(), world_size());
  state.fill();
  SharedTempDir dir;
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(state.snapshot());
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
  if (world_rank() == 0) EXPECT_EQ(inspect_container(path).tensors.size(), 2000u);
}

TEST(Scale, SamplerStateLargerThan64KiB) {
  std::vector<std::int64_t> permutation(100000);
  std::iota(permutation.begin(), permutation.end(), 0);
  std::reverse(permutation.begin(), permutation.end());
  Snapshot s;
  s.running.sampler = {{"epoch", 3}, {"permutation", permutation}};
  ASSERT_GT(s.running.sampler.dump().size(), 64u * 1024);
  SharedTempDir dir;
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(s);
  const auto r = io.load(path, Snapshot{});
  EXPECT_EQ(r.running.sampler["permutation"].get<std::vector<std::int64_t>>(), permutation);
}

// 1 GiB over 4 ranks: 4 tensors of 256 MiB, each split in row blocks over the ranks.
TEST(Scale, OneGiBAcrossFourRanks) {
  if (world_size() != 4) GTEST_SKIP() << "runs at 4 ranks";
  const int rank = world_rank();
  constexpr std::int64_t kRows = 4096, kCols = 16384;  // 64 Mi floats = 256 MiB per tensor
  std::vector<std::vector<std::uint32_t>> buffers(4);
  Snapshot s;
  s.model.emplace();
  const std::int64_t rows = kRows / 4, first_row = rank * rows;
  auto value = [](int t, std::int64_t flat) { return static_cast<std::uint32_t>(flat * 2654435761u) ^ (t * 0x9E37u); };
  for (int t = 0; t < 4; ++t) {
    buffers[t].resize(static_cast<std::size_t>(rows * kCols));
    for (std::size_t i = 0; i < buffers[t].size(); ++i)
      buffers[t][i] = value(t, first_row * kCols + static_cast<std::int64_t>(i));
    s.model->add("big" + std::to_string(t),
                 TensorShard::block(buffers[t].data(), DType::F32, {kRows, kCols}, {first_row, 0}, {rows, kCols}));
  }
  SharedTempDir dir;
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(s);
  if (rank == 0) EXPECT_GE(std::filesystem::file_size(path), 1ull << 30);
  // Load with a different split: rank r reads the rows of rank (r + 1) % 4.
  const std::int64_t other_first = ((rank + 1) % 4) * rows;
  Snapshot target;
  target.model.emplace();
  for (int t = 0; t < 4; ++t) {
    std::fill(buffers[t].begin(), buffers[t].end(), 0u);
    target.model->add("big" + std::to_string(t), TensorShard::block(buffers[t].data(), DType::F32, {kRows, kCols},
                                                                    {other_first, 0}, {rows, kCols}));
  }
  io.load(path, target);
  for (int t = 0; t < 4; ++t)
    for (std::size_t i = 0; i < buffers[t].size(); ++i)
      if (buffers[t][i] != value(t, other_first * kCols + static_cast<std::int64_t>(i))) {
        ADD_FAILURE() << "tensor big" << t << " element " << i << " differs";
        break;
      }
}

}  // namespace
}  // namespace ckptio::test
