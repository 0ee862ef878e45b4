// PreemptionGuard::should_stop: every rank agrees on the same stopping step, whichever rank
// got the signal, at most one step after it arrived; repeated calls for one step are
// harmless; without a signal it never stops. The guard holds one duplicate of the
// communicator, counted through MPI's profiling interface (the calls go on to the real MPI).
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <vector>

#include "support/scoped_env.hpp"
#include "support/test_util.hpp"

namespace ckptio::test {

// MPI_Comm_dup and MPI_Comm_free calls in this process (an asynchronous save's thread may
// make some).
std::atomic<long> comm_dups{0};
std::atomic<long> comm_frees{0};

namespace {

// Every rank's value, in rank order.
std::vector<long long> gathered(long long mine) {
  std::vector<long long> all(static_cast<std::size_t>(world_size()));
  MPI_Allgather(&mine, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD);
  return all;
}

// Runs steps 1..last, raising `signal` on rank `signal_rank` just before should_stop(at);
// with `twice`, calls should_stop twice per step and raises between the two calls of step
// `at` instead. Returns the first step for which should_stop returned true (0: none).
long long first_stop(PreemptionGuard& guard, int signal, int signal_rank, long long at, long long last, bool twice) {
  long long stopped = 0;
  for (long long g = 1; g <= last; ++g) {
    if (!twice && g == at && world_rank() == signal_rank) std::raise(signal);
    const bool first = guard.should_stop(g);
    if (twice) {
      if (g == at && world_rank() == signal_rank) std::raise(signal);
      EXPECT_EQ(guard.should_stop(g), first) << "a second call for step " << g << " changed the answer";
    }
    if (first && stopped == 0) stopped = g;
    if (stopped != 0) EXPECT_TRUE(first) << "should_stop went back to false at step " << g;
  }
  return stopped;
}

class Preemption : public testing::Test {
 protected:
  // The agreement is what is tested here, not Slurm: no walltime probe, no requeue (also
  // when the tests themselves run inside a Slurm job; restored after each test).
  ScopedEnv job_id_{"SLURM_JOB_ID", std::nullopt};
  ScopedEnv restart_count_{"SLURM_RESTART_COUNT", std::nullopt};
  SharedTempDir dir_;
};

TEST_F(Preemption, WithoutASignalItNeverStops) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  for (long long g = 1; g <= 200; ++g) {
    ASSERT_FALSE(guard.should_stop(g)) << "step " << g;
    ASSERT_FALSE(guard.should_stop(g)) << "step " << g << ", second call";
  }
  EXPECT_EQ(guard.reason(), StopReason::None);
  EXPECT_FALSE(guard.requeue_due());
}

TEST_F(Preemption, SignalOnTheLastRankOnlyStopsEveryRankAtTheSameStep) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  const long long stopped = first_stop(guard, SIGUSR1, world_size() - 1, 5, 20, false);
  // Seen at step 5's call, agreed by step 6's: one step late, never more.
  EXPECT_EQ(stopped, 6);
  const std::vector<long long> all = gathered(stopped);
  for (std::size_t r = 0; r < all.size(); ++r) EXPECT_EQ(all[r], 6) << "rank " << r;
  EXPECT_EQ(guard.reason(), StopReason::RequeueSignal);
  EXPECT_FALSE(guard.requeue_due());  // not under Slurm
  EXPECT_TRUE(guard.should_stop(6));
}

TEST_F(Preemption, SignalOnRankZeroOnlyStopsEveryRankAtTheSameStep) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  const long long stopped = first_stop(guard, SIGUSR1, 0, 1, 10, false);
  EXPECT_EQ(stopped, 2);
  for (long long s : gathered(stopped)) EXPECT_EQ(s, 2);
}

TEST_F(Preemption, RepeatedCallsForOneStepAgreeAndSeeTheSignalAtTheNextStep) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  // Raised between the two calls of step 3: step 3's answer is fixed; step 4's call reads
  // the flag, step 5's agrees.
  const long long stopped = first_stop(guard, SIGUSR1, world_size() / 2, 3, 12, true);
  EXPECT_EQ(stopped, 5);
  for (long long s : gathered(stopped)) EXPECT_EQ(s, 5);
}

TEST_F(Preemption, SigtermStopsWithoutRequeue) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  const long long stopped = first_stop(guard, SIGTERM, world_size() - 1, 4, 10, false);
  EXPECT_EQ(stopped, 5);
  for (long long s : gathered(stopped)) EXPECT_EQ(s, 5);
  EXPECT_EQ(guard.reason(), StopReason::Terminate);
  EXPECT_FALSE(guard.requeue_due());
}

TEST_F(Preemption, Usr2CanBeTheRequeueSignalAndRequeuesUnderSlurm) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  job_id_.set("424242");
  restart_count_.set("2");
  {
    PreemptionOptions options;
    options.requeue_signal = SIGUSR2;
    options.watch_walltime = false;
    options.max_requeues = 3;
    PreemptionGuard guard(MPI_COMM_WORLD, io, options);
    const long long stopped = first_stop(guard, SIGUSR2, 0, 2, 6, false);
    EXPECT_EQ(stopped, 3);
    EXPECT_EQ(guard.reason(), StopReason::RequeueSignal);
    EXPECT_TRUE(guard.requeue_due());
  }
  {
    PreemptionOptions options;
    options.requeue_signal = SIGUSR2;
    options.watch_walltime = false;
    options.max_requeues = 2;  // SLURM_RESTART_COUNT=2 has reached it
    PreemptionGuard guard(MPI_COMM_WORLD, io, options);
    EXPECT_EQ(first_stop(guard, SIGUSR2, 0, 2, 6, false), 3);
    EXPECT_FALSE(guard.requeue_due());
  }
}

TEST_F(Preemption, ASecondGuardIsRefusedOnEveryRank) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionGuard guard(MPI_COMM_WORLD, io);
  try {
    PreemptionGuard second(MPI_COMM_WORLD, io);
    FAIL() << "a second guard was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "[ckptio] [rank 0] PreemptionGuard: a PreemptionGuard already exists in this process; only one may");
  }
}

TEST_F(Preemption, OnlyUsr1OrUsr2CanBeTheRequeueSignal) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  PreemptionOptions options;
  options.requeue_signal = SIGINT;
  EXPECT_THROW(PreemptionGuard(MPI_COMM_WORLD, io, options), UsageError);
}

TEST_F(Preemption, HoldsOneDuplicateOfTheCommunicatorAndFreesIt) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const long dups = comm_dups;
  const long frees = comm_frees;
  {
    PreemptionGuard guard(MPI_COMM_WORLD, io);
    EXPECT_EQ(comm_dups - dups, 1);
    EXPECT_EQ(comm_frees - frees, 0);
    EXPECT_FALSE(guard.should_stop(1));
    EXPECT_FALSE(guard.should_stop(2));  // leaves a reduction in flight for the destructor
  }
  EXPECT_EQ(comm_dups - dups, 1);
  EXPECT_EQ(comm_frees - frees, 1);

  // A guard refused on every rank frees its duplicate too.
  PreemptionOptions bad;
  bad.poll_seconds = 0;
  try {
    PreemptionGuard refused(MPI_COMM_WORLD, io, bad);
    FAIL() << "poll_seconds = 0 was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "[ckptio] [rank 0] PreemptionGuard: poll_seconds must be > 0");
  }
  EXPECT_EQ(comm_dups - dups, 2);
  EXPECT_EQ(comm_frees - frees, 2);
}

}  // namespace
}  // namespace ckptio::test

// MPI's profiling interface: count, then call the real MPI through its PMPI_ names.
extern "C" int MPI_Comm_dup(MPI_Comm comm, MPI_Comm* newcomm) {
  ++ckptio::test::comm_dups;
  return PMPI_Comm_dup(comm, newcomm);
}

extern "C" int MPI_Comm_free(MPI_Comm* comm) {
  ++ckptio::test::comm_frees;
  return PMPI_Comm_free(comm);
}
