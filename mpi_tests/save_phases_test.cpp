// A failure injected at every phase of a save (save_transaction.hpp), on one rank: every
// rank throws the same error, no `.partial` is left, `latest` still names the previous
// checkpoint, and the next save works. Retention failures never fail a committed save.
#include <gtest/gtest.h>

#include <fstream>

#include "core/fault.hpp"
#include "io/save_transaction.hpp"
#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

std::string latest_line(const fs::path& root) {
  std::ifstream latest(root / "latest");
  std::string line;
  std::getline(latest, line);
  return line;
}

std::vector<std::string> partial_files(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename().string().find(".partial") != std::string::npos) out.push_back(e.path().filename());
  return out;
}

struct PhaseFault {
  const char* point;
  int rank;  // -1: the last rank
  std::string operation;
};

class SavePhaseFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detail::fault_injection_compiled())
      GTEST_SKIP() << "fault injection is not compiled in (configure with -DCKPTIO_FAULT_INJECTION=ON)";
  }
  void TearDown() override { detail::inject_save_fault_for_testing("", -1); }
};

TEST_F(SavePhaseFaults, FailureAtEveryPhaseIsAgreedAndHarmless) {
  const int n = world_size();
  SharedTempDir dir;
  TestState state(
      {{"model", "w", DType::F32, {64, 8}, Layout::Dim0Blocks}, {"model", "r", DType::F32, {16}, Layout::Replicated}},
      world_rank(), n);
  state.fill();
  // The export makes the export phase run too.
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.export_safetensors = "model"});
  std::int64_t step = 10;
  state.snapshot().running.global_step = step;
  io.save(state.snapshot());
  auto partial_of = [&](std::int64_t g) {
    return (dir / ("epoch0-global_step" + std::to_string(g) + ".h5.partial")).string();
  };
  auto final_of = [&](std::int64_t g) { return (dir / ("epoch0-global_step" + std::to_string(g) + ".h5")).string(); };
  const PhaseFault faults[] = {
      {"save.plan", -1, "save"},
      {"save.create", -1, "save"},
      {"save.write", -1, "save: write " + partial_of(step + 10)},
      {"save.metadata", -1, "save: write metadata of " + partial_of(step + 10)},
      {"save.after_writes", -1, "save: fsync " + partial_of(step + 10)},
      {"save.export", -1, "save: export"},
      {"save.commit", -1, "save: commit " + final_of(step + 10)},
      {"save.latest", 0, "save: commit " + final_of(step + 10)},
  };
  for (const auto& fault : faults) {
    SCOPED_TRACE(fault.point);
    const std::string committed = "epoch0-global_step" + std::to_string(step) + ".h5";
    const int rank = fault.rank < 0 ? n - 1 : fault.rank;
    // Every phase fails at the same step (the failed saves commit nothing).
    state.snapshot().running.global_step = step + 10;
    detail::inject_save_fault_for_testing(fault.point, rank);
    const auto msg = expect_agreed_error<IoError>([&] { io.save(state.snapshot()); });
    EXPECT_EQ(msg,
              "[ckptio] [rank " + std::to_string(rank) + "] " + fault.operation + ": injected fault at " + fault.point);
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_EQ(partial_files(dir.path()), std::vector<std::string>{});
    // The rename may have happened before `latest` failed; nothing else renames.
    if (std::string(fault.point) != "save.latest") EXPECT_FALSE(fs::exists(final_of(step + 10)));
    EXPECT_EQ(latest_line(dir.path()), committed);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  detail::inject_save_fault_for_testing("", -1);
  // The next save works, and the checkpoint loads.
  state.snapshot().running.global_step = step + 20;
  EXPECT_EQ(io.save(state.snapshot()), dir / "epoch0-global_step30.h5");
  EXPECT_EQ(latest_line(dir.path()), "epoch0-global_step30.h5");
  state.poison();
  const auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 30);
  EXPECT_EQ(state.check(), "");
}

TEST_F(SavePhaseFaults, RetentionFailureLeavesTheSaveCommitted) {
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {64, 8}, Layout::Dim0Blocks}}, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.keep_last = 1});
  state.snapshot().running.global_step = 10;
  io.save(state.snapshot());
  detail::inject_save_fault_for_testing("save.prune", 0);
  state.snapshot().running.global_step = 20;
  EXPECT_EQ(io.save(state.snapshot()), dir / "epoch0-global_step20.h5");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(latest_line(dir.path()), "epoch0-global_step20.h5");
  EXPECT_TRUE(fs::exists(dir / "epoch0-global_step10.h5"));  // not pruned: retention failed
  // The next save prunes it.
  state.snapshot().running.global_step = 30;
  io.save(state.snapshot());
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step10.h5"));
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step20.h5"));
}

// The same transaction runs save_async's phases on the I/O thread: a failure while the file
// is open there comes back from wait() the same on every rank, and cleans up.
TEST_F(SavePhaseFaults, AsyncFailureWhileTheFileIsOpen) {
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE) GTEST_SKIP() << "needs MPI_THREAD_MULTIPLE";
  const int n = world_size();
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {64, 8}, Layout::Dim0Blocks}}, world_rank(), n);
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 10;
  io.save(state.snapshot());
  detail::inject_save_fault_for_testing("save.metadata", n - 1);
  state.snapshot().running.global_step = 20;
  io.save_async(state.snapshot());
  const auto msg = expect_agreed_error<IoError>([&] { io.wait(); });
  EXPECT_EQ(msg, "[ckptio] [rank " + std::to_string(n - 1) + "] save: write metadata of " +
                     (dir / "epoch0-global_step20.h5.partial").string() + ": injected fault at save.metadata");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(partial_files(dir.path()), std::vector<std::string>{});
  EXPECT_EQ(latest_line(dir.path()), "epoch0-global_step10.h5");
  state.snapshot().running.global_step = 30;
  io.save_async(state.snapshot());
  io.wait();
  EXPECT_EQ(latest_line(dir.path()), "epoch0-global_step30.h5");
}

}  // namespace
}  // namespace ckptio::test
