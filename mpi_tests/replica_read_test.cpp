// Load reads a piece that several ranks ask for (a replicated tensor) from the file once and
// sends it to the other ranks: the bytes read from the file do not grow with the replicas.
// Where no tensor is asked for by two ranks (whole tensors of each rank's own), each rank
// reads all it asked for and nothing is sent, with errors still agreed.
#include <gtest/gtest.h>

#include "core/piece_math.hpp"
#include "support/agreement.hpp"
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

// Saved replicated; loaded with every tensor whole on one rank (tensor i on rank i % n),
// packed small ones and large ones with datasets of their own.
std::vector<TensorSpec> whole_tensors(int rank, int ranks, DType wrong_dtype_for_last = DType::F32) {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 12; ++i) {
    if (rank >= 0 && i % ranks != rank) continue;
    const Shape shape = i % 3 == 0 ? Shape{1024, 300} : Shape{7 + i, 5};  // 1.2 MB or under 1 KiB
    const DType dtype = rank >= 0 && i == 11 && i % ranks == rank ? wrong_dtype_for_last : DType::F32;
    specs.push_back({i % 2 ? "model" : "ema", "t." + std::to_string(i), dtype, shape, Layout::Replicated});
  }
  return specs;
}

std::int64_t bytes_of(const std::vector<TensorSpec>& specs) {
  std::int64_t bytes = 0;
  for (const auto& s : specs) bytes += detail::element_count(s.shape) * static_cast<std::int64_t>(dtype_size(s.dtype));
  return bytes;
}

TEST(ReplicaRead, TensorsAskedForByOneRankEachAreReadByItAndNotSent) {
  const int rank = world_rank(), ranks = world_size();
  SharedTempDir dir;
  TestState saved(whole_tensors(-1, ranks), rank, ranks);
  saved.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(saved.snapshot());

  const std::vector<TensorSpec> mine = whole_tensors(rank, ranks);
  TestState loaded(mine, rank, ranks);
  loaded.poison();
  const auto r = io.load(path, loaded.snapshot());
  EXPECT_EQ(loaded.check(), "");
  EXPECT_EQ(static_cast<std::int64_t>(r.bytes_read), bytes_of(mine));
  EXPECT_EQ(r.bytes_received, 0u);
  EXPECT_TRUE(r.keys.clean());
  EXPECT_EQ(sum_over_ranks(r.bytes_read), bytes_of(whole_tensors(-1, ranks)));

  // The rank holding t.11 asks for it as F64: every rank gets the same error.
  TestState wrong(whole_tensors(rank, ranks, DType::F64), rank, ranks);
  const std::string message = expect_agreed_error<MismatchError>([&] { io.load(path, wrong.snapshot()); });
  EXPECT_NE(
      message.find("tensor model/t.11 on rank " + std::to_string(11 % ranks) + ": requested as F64 but stored as F32"),
      std::string::npos)
      << message;
}

}  // namespace
}  // namespace ckptio::test
