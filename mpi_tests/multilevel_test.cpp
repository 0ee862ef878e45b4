// The node-local level (CheckpointOptions::local_dir) on one host: CKPTIO_TEST_RANKS_PER_NODE
// makes "nodes" of consecutive ranks, each with a local folder of its own, so that partner
// copies travel over MPI as between real nodes. Run with an even number of ranks >= 2.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <utility>

#include "ckptio/verify.hpp"
#include "io/save_transaction.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

class LocalLevelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    n = world_size();
    if (n < 2 || n % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
    setenv("CKPTIO_TEST_RANKS_PER_NODE", std::to_string(n / 2).c_str(), 1);  // two nodes
    unsetenv("SLURM_JOB_ID");
  }
  void TearDown() override {
    unsetenv("CKPTIO_TEST_RANKS_PER_NODE");
    unsetenv("SLURM_JOB_ID");
    detail::inject_save_fault_for_testing("", -1);
  }
  CheckpointOptions options() const {
    CheckpointOptions o;
    o.local_dir = local.path();
    o.flush_every = 3;
    o.local_keep_last = 2;
    return o;
  }
  fs::path node_folder(int node) const {
    return local.path() / ("simulated-node" + std::to_string(node)) / ("node" + std::to_string(node));
  }
  fs::path partner_copy(int holder, int of, std::int64_t step) const {
    return local.path() / ("simulated-node" + std::to_string(holder)) / "partner" / ("node" + std::to_string(of)) /
           ("epoch0-global_step" + std::to_string(step) + ".h5");
  }
  static std::string step_file(std::int64_t step) { return "epoch0-global_step" + std::to_string(step) + ".h5"; }
  // Saves steps 1..4 with flush_every 3: step 3 goes to the shared root too.
  void save_four(TestState& state) {
    CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
    for (std::int64_t g = 1; g <= 4; ++g) {
      state.snapshot().running.global_step = g;
      io.save(state.snapshot());
    }
  }
  // A fresh CheckpointIO (a restarted job step) loads the newest restorable checkpoint.
  LoadResult restart(TestState& state) {
    state.poison();
    CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
    auto result = io.load_latest(state.snapshot());
    EXPECT_TRUE(result.has_value());
    EXPECT_EQ(state.check(), "");
    return result.value_or(LoadResult{});
  }
  // Saves steps 1..4, lets rank 0 do to the local folders what a failure would (the other
  // ranks wait for it), then restarts.
  template <class Damage>
  LoadResult save_four_then_restart_after(TestState& state, Damage&& damage_on_rank0) {
    state.fill();
    save_four(state);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) std::forward<Damage>(damage_on_rank0)();
    MPI_Barrier(MPI_COMM_WORLD);
    return restart(state);
  }

  int n = 0;
  SharedTempDir shared;
  SharedTempDir local;
  std::vector<TensorSpec> specs{{"model", "w", DType::F32, {4096, 64}, Layout::Dim0Blocks},
                                {"model", "r", DType::F32, {16}, Layout::Replicated},
                                {"optimizer", "m", DType::F32, {1000}, Layout::Flat}};
};

TEST_F(LocalLevelTest, EverySaveIsLocalAndEveryThirdIsFlushed) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  MPI_Barrier(MPI_COMM_WORLD);
  // The shared root has only the flush; each node keeps the last two local checkpoints,
  // its own and its partner's.
  EXPECT_TRUE(fs::exists(shared / step_file(3)));
  for (std::int64_t g : {1, 2, 4}) EXPECT_FALSE(fs::exists(shared / step_file(g))) << g;
  for (int node : {0, 1}) {
    EXPECT_FALSE(fs::exists(node_folder(node) / step_file(2)));
    for (std::int64_t g : {3, 4}) {
      EXPECT_TRUE(fs::exists(node_folder(node) / step_file(g))) << node << " " << g;
      EXPECT_TRUE(fs::exists(node_folder(node) / (step_file(g) + ".level")));
      EXPECT_TRUE(fs::exists(partner_copy(1 - node, node, g)));
    }
  }
  // A node's container holds its datasets at their global shapes but only the node's pieces
  // (half of w) take space: the rest are holes, kept in the partner copy too.
  if (world_rank() == 0) {
    const std::uint64_t whole_w = 4096 * 64 * sizeof(float);
    for (const fs::path& copy : {node_folder(1) / step_file(4), partner_copy(0, 1, 4)}) {
      struct stat st {};
      ASSERT_EQ(::stat(copy.c_str(), &st), 0) << copy;
      EXPECT_GE(static_cast<std::uint64_t>(st.st_size), whole_w) << copy;
      EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, whole_w * 3 / 4) << copy << " is not sparse";
    }
  }
  // A node's container is an ordinary container holding that node's pieces only.
  if (world_rank() == 0) {
    const auto report = verify_container(MPI_COMM_SELF, node_folder(1) / step_file(4));
    EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
  }
  const LoadResult result = restart(state);
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 4);
}

TEST_F(LocalLevelTest, ReplacedNodeIsRestoredFromItsPartnerCopy) {
  TestState state(specs, world_rank(), n);
  // Node 1's local storage is new.
  const LoadResult result = save_four_then_restart_after(state, [&] { fs::remove_all(node_folder(1)); });
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 4);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(fs::exists(node_folder(1) / step_file(4)));  // sent back to node 1
}

// A requeued job on an overlapping node set: the nodes' indices are swapped, so each node
// holds the other's container as its own folder's and its own as a partner copy. Each node
// reads the copy it holds of its own pieces where it lies.
TEST_F(LocalLevelTest, NodesThatSwappedIndicesReadThePartnerCopiesTheyHold) {
  TestState state(specs, world_rank(), n);
  const LoadResult result = save_four_then_restart_after(state, [&] {
    const fs::path node0 = local.path() / "simulated-node0";
    const fs::path node1 = local.path() / "simulated-node1";
    fs::rename(node0, local.path() / "swap");
    fs::rename(node1, node0);
    fs::rename(local.path() / "swap", node1);
  });
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 4);
}

TEST_F(LocalLevelTest, LostOwnAndPartnerCopyFallsBackToTheNewestFlush) {
  TestState state(specs, world_rank(), n);
  const LoadResult result = save_four_then_restart_after(state, [&] {
    fs::remove_all(node_folder(1));
    fs::remove_all(partner_copy(0, 1, 4).parent_path());
  });
  EXPECT_EQ(result.level, "shared");
  EXPECT_EQ(result.running.global_step, 3);
}

TEST_F(LocalLevelTest, FlippedByteInALocalContainerIsSkippedForThePartnerCopy) {
  TestState state(specs, world_rank(), n);
  const LoadResult result = save_four_then_restart_after(state, [&] {
    const fs::path victim = node_folder(1) / step_file(4);
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    const auto middle = static_cast<std::streamoff>(fs::file_size(victim) / 2);
    f.seekg(middle);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    f.seekp(middle);
    f.write(&c, 1);
  });
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 4);
}

TEST_F(LocalLevelTest, AnotherJobsLocalFilesAreIgnored) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  setenv("SLURM_JOB_ID", "4242", 1);  // the same folder, a later job
  ::testing::internal::CaptureStderr();
  const LoadResult result = restart(state);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(result.level, "shared");
  EXPECT_EQ(result.running.global_step, 3);
  // Rank 0 leads node 0, which scans its folder and says why each record is left alone.
  if (world_rank() == 0) EXPECT_NE(log.find(": it belongs to job nojob, not 4242"), std::string::npos) << log;
}

// A local checkpoint saved with another grouping of ranks on nodes (here: the job restarted
// with all ranks on one node) is never loaded: its pieces sit where that layout put them.
TEST_F(LocalLevelTest, LocalFilesOfAnotherLayoutOfRanksOnNodesAreIgnored) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  setenv("CKPTIO_TEST_RANKS_PER_NODE", std::to_string(n).c_str(), 1);  // one node now
  ::testing::internal::CaptureStderr();
  const LoadResult result = restart(state);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(result.level, "shared");
  EXPECT_EQ(result.running.global_step, 3);
  if (world_rank() == 0) EXPECT_NE(log.find(": saved with another layout of ranks on nodes"), std::string::npos) << log;
}

// Each folder (own and partner copies, on every node) keeps the newest local_keep_last
// committed steps, and after a flush none older than it: restart would not choose them.
TEST_F(LocalLevelTest, RetentionKeepsTheLastLocalCheckpointsAndNoneOlderThanTheNewestFlush) {
  TestState state(specs, world_rank(), n);
  state.fill();
  CheckpointOptions o = options();  // flush_every 3
  o.local_keep_last = 3;
  // Which steps each folder holds after the save of step g (g = 1..8).
  const std::vector<std::vector<std::int64_t>> expected = {{1}, {1, 2}, {3}, {3, 4}, {3, 4, 5}, {6}, {6, 7}, {6, 7, 8}};
  CheckpointIO io(MPI_COMM_WORLD, shared.path(), o);
  for (std::int64_t g = 1; g <= 8; ++g) {
    state.snapshot().running.global_step = g;
    io.save(state.snapshot());
    MPI_Barrier(MPI_COMM_WORLD);
    for (int node : {0, 1}) {
      for (const fs::path& folder : {node_folder(node), partner_copy(1 - node, node, g).parent_path()}) {
        std::vector<std::int64_t> held;
        for (std::int64_t s = 1; s <= 8; ++s) {
          const bool container = fs::exists(folder / step_file(s));
          const bool record = fs::exists(folder / (step_file(s) + ".level"));
          EXPECT_EQ(container, record) << folder << " step " << s;
          if (container) held.push_back(s);
        }
        EXPECT_EQ(held, expected[g - 1]) << "after the save of step " << g << " in " << folder;
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  EXPECT_TRUE(fs::exists(shared / step_file(3)));
  EXPECT_TRUE(fs::exists(shared / step_file(6)));
}

// A record of a step saved again (a job resumed from an older checkpoint) is removed before
// the new containers replace the old ones, so that it never vouches for a mix of two saves.
TEST_F(LocalLevelTest, ASavedAgainStepIsNotCommittedUntilTheNewSaveCommits) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  {
    CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
    detail::inject_save_fault_for_testing("local.partner", -1);
    state.snapshot().running.global_step = 4;  // step 4 again, its partner copy fails
    EXPECT_THROW(io.save(state.snapshot()), Error);
    detail::inject_save_fault_for_testing("", -1);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  for (int node : {0, 1}) {
    EXPECT_FALSE(fs::exists(node_folder(node) / (step_file(4) + ".level"))) << node;
    EXPECT_TRUE(fs::exists(node_folder(node) / (step_file(3) + ".level"))) << node;
  }
  const LoadResult result = restart(state);
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 3);
}

// save_async of a local-only save returns after the staging copy: the tensors may change at
// once, the local checkpoint holds the values at the call; wait() reports a failure of its
// background part as the same error on every rank, and nothing of that step is committed.
TEST_F(LocalLevelTest, SaveAsyncWritesTheLocalLevelInTheBackground) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  {
    CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
    state.snapshot().running.global_step = 5;  // this object's first save: local only
    const fs::path path = io.save_async(state.snapshot());
    EXPECT_EQ(path, node_folder(world_rank() / (n / 2)) / step_file(5));
    state.poison();  // training goes on and changes the tensors
    io.wait();
    state.fill();
    MPI_Barrier(MPI_COMM_WORLD);
    for (int node : {0, 1}) {
      EXPECT_TRUE(fs::exists(node_folder(node) / (step_file(5) + ".level"))) << node;
      EXPECT_TRUE(fs::exists(partner_copy(1 - node, node, 5))) << node;
    }
    EXPECT_FALSE(fs::exists(shared / step_file(5)));
    // The partner copy of step 6 fails on rank 0 only: every rank gets the same error.
    detail::inject_save_fault_for_testing("local.partner", 0);
    state.snapshot().running.global_step = 6;
    io.save_async(state.snapshot());
    std::string message;
    try {
      io.wait();
    } catch (const Error& e) {
      message = e.what();
    }
    detail::inject_save_fault_for_testing("", -1);
    EXPECT_NE(message.find("injected fault at local.partner"), std::string::npos) << message;
    std::string rank0_message = message;
    rank0_message.resize(4096, '\0');
    MPI_Bcast(rank0_message.data(), 4096, MPI_CHAR, 0, MPI_COMM_WORLD);
    EXPECT_EQ(message, rank0_message.c_str());
    MPI_Barrier(MPI_COMM_WORLD);
    for (int node : {0, 1}) EXPECT_FALSE(fs::exists(node_folder(node) / (step_file(6) + ".level"))) << node;
  }
  const LoadResult result = restart(state);
  EXPECT_EQ(result.level, "local");
  EXPECT_EQ(result.running.global_step, 5);
}

TEST_F(LocalLevelTest, FailureInEveryPhaseOfALocalSaveKeepsThePreviousCheckpoint) {
  TestState state(specs, world_rank(), n);
  state.fill();
  save_four(state);
  std::int64_t step = 10;
  for (const char* point : {"local.node.plan", "local.node.write", "local.node.commit", "local.partner.send",
                            "local.partner.chunk", "local.partner.receive", "local.partner"}) {
    for (int rank : {0, -1}) {
      {
        CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
        detail::inject_save_fault_for_testing(point, rank);
        state.snapshot().running.global_step = ++step;
        EXPECT_THROW(io.save(state.snapshot()), Error) << point << " on rank " << rank;
        detail::inject_save_fault_for_testing("", -1);
      }
      const LoadResult result = restart(state);
      EXPECT_EQ(result.level, "local") << point;
      EXPECT_EQ(result.running.global_step, 4) << point << " on rank " << rank;
    }
  }
  // A preemption stop makes the next save a flush, whatever flush_every says.
  CheckpointIO io(MPI_COMM_WORLD, shared.path(), options());
  io.flush_next_save();
  state.snapshot().running.global_step = 20;
  io.save(state.snapshot());
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(fs::exists(shared / step_file(20)));
}

}  // namespace
}  // namespace ckptio::test
