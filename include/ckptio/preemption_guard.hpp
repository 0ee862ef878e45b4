// ckptio: reacting to Slurm preemption, time limits and cancellation by saving, requeueing
// and exiting, with every rank agreeing on the step at which to stop.
#pragma once

#include <mpi.h>

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>

namespace ckptio {

class CheckpointIO;

struct PreemptionOptions {
  // The signal that means "save, requeue, exit": SIGUSR1 (what slurm/*.sbatch ask for with
  // --signal=B:USR1@T) or SIGUSR2 (NCCL may use SIGUSR1 in some builds); 0 handles none.
  int requeue_signal = SIGUSR1;
  // SIGTERM means "save and exit, do not requeue" (a user's scancel; at preemption with
  // PreemptMode=REQUEUE Slurm requeues the job itself).
  bool handle_sigterm = true;
  // Requeue with `scontrol requeue Incomplete $SLURM_JOB_ID` after a requeue signal or the
  // walltime probe stopped the run. Without SLURM_JOB_ID nothing is requeued.
  bool requeue = true;
  // Do not requeue once SLURM_RESTART_COUNT has reached this; negative: no limit.
  int max_requeues = -1;
  // Watch the job's remaining time (squeue -h -j $SLURM_JOB_ID -o %L) and stop when it falls
  // below the lead time: the longest recent save × save_time_factor + margin_seconds + two
  // steps (the agreement is one step late). Probed at start and every poll_seconds.
  bool watch_walltime = true;
  double poll_seconds = 60.0;
  double save_time_factor = 2.0;
  double margin_seconds = 30.0;
  // A fixed lead time in seconds instead of the measured one; negative: measure.
  double lead_seconds = -1.0;
  // After a requeue was asked for, ranks other than rank 0 wait up to this long for the
  // requeue's SIGTERM before they exit (under mpirun an early non-zero exit would kill rank 0
  // before it has requeued the job).
  double requeue_wait_seconds = 30.0;
  // The Slurm commands, found through PATH when they have no slash, and how long each may
  // run before it is killed (a controller that does not answer must not stall training).
  std::string squeue = "squeue";
  std::string scontrol = "scontrol";
  double command_timeout_seconds = 10.0;
};

// Why a run stopped, as agreed by every rank.
enum class StopReason {
  None = 0,
  RequeueSignal = 1,  // the requeue signal reached at least one rank
  Terminate = 2,      // SIGTERM reached at least one rank (and no requeue signal did)
  Walltime = 3,       // the job's remaining time fell below the lead time
};
const char* to_string(StopReason reason) noexcept;

// The exit status of a run stopped by a PreemptionGuard (EX_TEMPFAIL).
inline constexpr int kPreemptedExitCode = 75;

// Installs the signal handlers (which only set a flag) for its lifetime and turns signals
// and the walltime into one decision that every rank shares:
//
//   ckptio::PreemptionGuard guard(MPI_COMM_WORLD, io);
//   for (; g < total; ) {
//     train_one_step(); ++g;
//     const bool stop = guard.should_stop(g);
//     if (g % every == 0 || stop || g == total) io.save(snapshot_at(g));
//     if (stop) guard.exit_after_save();   // never returns; exit status 75
//   }
//
// One guard per process. Neither copyable nor movable: a reduction in flight points into it.
class PreemptionGuard {
 public:
  // Collective over comm. Logs SLURM_RESTART_COUNT and, under Slurm, the job's remaining time.
  // The communicator is duplicated (once); comm may be freed after. `io` is asked how long
  // recent saves took; it must outlive the guard (CheckpointIO cannot move, so its address
  // stays valid for as long as it lives).
  PreemptionGuard(MPI_Comm comm, const CheckpointIO& io, PreemptionOptions options = {});
  // Collective when a reduction is still in flight (it is completed); restores the handlers.
  ~PreemptionGuard();
  PreemptionGuard(const PreemptionGuard&) = delete;
  PreemptionGuard& operator=(const PreemptionGuard&) = delete;
  PreemptionGuard(PreemptionGuard&&) = delete;
  PreemptionGuard& operator=(PreemptionGuard&&) = delete;

  // Collective. Call once per completed step g, with increasing g. Returns the same answer on
  // every rank: true once a signal has reached any rank or the walltime ran short, at most
  // one step after it happened (each call completes a non-blocking reduction started by the
  // previous call and starts the next; no call blocks on a fresh collective). Calling it again
  // with the same g returns the same answer and communicates nothing. Once true, stays true.
  bool should_stop(std::int64_t global_step);

  // The agreed reason; None until should_stop returned true.
  StopReason reason() const noexcept;
  // Whether exit_after_save() will requeue the job (the same on every rank).
  bool requeue_due() const;

  // Collective; call after the checkpoint of the stopping step is committed. Barrier,
  // MPI_Finalize on every rank, then rank 0 runs `scontrol requeue Incomplete $SLURM_JOB_ID`
  // when requeue_due(), and every process exits with kPreemptedExitCode. A failing requeue is
  // logged; the exit status stays 75 and the checkpoint stays in place.
  [[noreturn]] void exit_after_save();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckptio
