// The commit protocol: `latest`, retention, stale partials, falling back past a damaged
// newest checkpoint, and the root lock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<TensorSpec> small_specs() {
  return {{"model", "w", DType::F32, {6, 4}, Layout::Dim0Blocks}, {"optimizer", "m", DType::F32, {24}, Layout::Flat}};
}

// Saves checkpoints at the given global steps with contents seeded by the step.
void save_steps(CheckpointIO& io, TestState& state, std::initializer_list<int> steps) {
  for (int g : steps) {
    state.fill();
    state.snapshot().running.global_step = g;
    state.snapshot().running.extras = {{"step", g}};
    io.save(state.snapshot());
  }
}

TEST(Commit, LatestNamesTheNewestCheckpoint) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  save_steps(io, state, {10, 20});
  EXPECT_EQ(read_text(dir / "latest"), "epoch0-global_step20.h5\n");
  const auto list = list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "epoch0-global_step10.h5");
  EXPECT_FALSE(list[0].is_latest);
  EXPECT_TRUE(list[1].is_latest);
  EXPECT_EQ(list[1].global_step, 20);
  EXPECT_GT(list[1].file_bytes, 0u);
}

TEST(Commit, KeepLastPrunesOldCheckpointsAfterCommit) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.keep_last = 2});
  save_steps(io, state, {10, 20, 30, 40, 50});
  MPI_Barrier(MPI_COMM_WORLD);  // pruning runs on rank 0 after the commit
  std::vector<std::string> names;
  for (const auto& e : list_checkpoints(dir.path())) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"epoch0-global_step40.h5", "epoch0-global_step50.h5"}));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Commit, SameNameIsReplaced) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  save_steps(io, state, {10});
  state.snapshot().running.extras = {{"second", true}};
  io.save(state.snapshot());
  const auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.extras, (nlohmann::json{{"second", true}}));
}

TEST(Commit, StalePartialIsNeverLoadedAndIsRemovedByTheNextSave) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  const fs::path stale = dir / "epoch0-global_step99.h5.partial";
  if (world_rank() == 0) std::ofstream(stale) << "half-written";
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  EXPECT_FALSE(io.load_latest(state.snapshot()));  // a partial is not a checkpoint
  EXPECT_TRUE(list_checkpoints(dir.path()).empty());
  save_steps(io, state, {10});
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(stale));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Commit, LoadLatestFallsBackPastADamagedNewestCheckpoint) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  save_steps(io, state, {10, 20});
  const fs::path newest = dir / "epoch0-global_step20.h5";
  if (world_rank() == 0) fs::resize_file(newest, fs::file_size(newest) / 3);
  MPI_Barrier(MPI_COMM_WORLD);
  state.poison();
  const auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 10);
  EXPECT_EQ(r->path, (dir / "epoch0-global_step10.h5").string());
  EXPECT_EQ(state.check(), "");
  // An explicit path never falls back.
  expect_agreed_error<FormatError>([&] { io.load(newest, state.snapshot()); });
}

TEST(Commit, LoadLatestFailsWhenNothingIsLoadable) {
  SharedTempDir dir;
  TestState state(small_specs(), world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  save_steps(io, state, {10});
  if (world_rank() == 0) fs::resize_file(dir / "epoch0-global_step10.h5", 100);
  MPI_Barrier(MPI_COMM_WORLD);
  const auto msg = expect_agreed_error<FormatError>([&] { io.load_latest(state.snapshot()); });
  EXPECT_NE(msg.find("no checkpoint in " + dir.path().string() + " could be loaded"), std::string::npos) << msg;
}

TEST(Commit, EmptyRootHasNoLatest) {
  SharedTempDir dir;
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  EXPECT_FALSE(io.latest());
  Snapshot none;
  EXPECT_FALSE(io.load_latest(none));
}

TEST(Lock, SecondWriterIsRefusedWhileTheFirstIsAlive) {
  SharedTempDir dir;
  auto first = std::make_unique<CheckpointIO>(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<LockedError>([&] { CheckpointIO second(MPI_COMM_WORLD, dir.path()); });
  int holder = getpid();  // rank 0 holds the lock
  MPI_Bcast(&holder, 1, MPI_INT, 0, MPI_COMM_WORLD);
  EXPECT_NE(msg.find("is in use by another job (pid " + std::to_string(holder)), std::string::npos) << msg;
  first.reset();
  CheckpointIO third(MPI_COMM_WORLD, dir.path());  // released with the first
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Lock, StaleLockOfADeadProcessIsTakenOver) {
  SharedTempDir dir;
  if (world_rank() == 0) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    // A pid above the kernel's pid_max cannot be alive.
    std::ofstream(dir / ".ckptio.lock") << R"({"host":")" << host
                                        << R"(","pid":2147483600,"slurm_job_id":"","since":"2026-01-01T00:00:00Z"})";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  if (world_rank() == 0)
    EXPECT_NE(read_text(dir / ".ckptio.lock").find("\"pid\":" + std::to_string(getpid())), std::string::npos);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Lock, LockOfALiveProcessOnAnotherHostIsRespected) {
  SharedTempDir dir;
  if (world_rank() == 0)
    std::ofstream(dir / ".ckptio.lock")
        << R"({"host":"some-other-node","pid":1,"slurm_job_id":"424242","since":"2026-01-01T00:00:00Z"})";
  MPI_Barrier(MPI_COMM_WORLD);
  const auto msg = expect_agreed_error<LockedError>([&] { CheckpointIO io(MPI_COMM_WORLD, dir.path()); });
  EXPECT_NE(msg.find("pid 1 on host some-other-node, Slurm job 424242"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ckptio::test
