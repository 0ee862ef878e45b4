// Load reads a piece that several ranks ask for (a replicated tensor) from the file once and
// sends it to the other ranks: the bytes read from the file do not grow with the replicas.
#include <gtest/gtest.h>

#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

TEST(ReplicaRead, ReplicatedTensorsAreReadOnceAndSent) {
  SharedTempDir dir;
  const std::vector<TensorSpec> specs = {{"model", "w", DType::F32, {256, 64}, Layout::Replicated},
                                         {"model", "b", DType::BF16, {64}, Layout::Replicated},
                                         {"ema", "w", DType::F32, {256, 64}, Layout::Dim0Blocks}};
  TestState state(specs, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(state.snapshot());
  state.poison();
  const auto r = io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");

  const std::int64_t replicated_bytes = 256 * 64 * 4 + 64 * 2;
  const std::int64_t split_bytes = 256 * 64 * 4;
  // Every stored byte read once in all, whatever the number of replicas.
  EXPECT_EQ(sum_over_ranks(r.bytes_read), replicated_bytes + split_bytes);
  // Every replica but the reader received the replicated tensors.
  EXPECT_EQ(sum_over_ranks(r.bytes_received), (world_size() - 1) * replicated_bytes);
}

TEST(ReplicaRead, ReplicatedLoadOfASplitSaveIsExact) {
  SharedTempDir dir;
  TestState saved({{"optimizer", "m", DType::F64, {33, 7, 5}, Layout::Flat}}, world_rank(), world_size());
  saved.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(saved.snapshot());
  TestState loaded({{"optimizer", "m", DType::F64, {33, 7, 5}, Layout::Replicated}}, world_rank(), world_size());
  loaded.poison();
  const auto r = io.load(path, loaded.snapshot());
  EXPECT_EQ(loaded.check(), "");
  EXPECT_EQ(sum_over_ranks(r.bytes_read), 33 * 7 * 5 * 8);
}

}  // namespace
}  // namespace ckptio::test
