#include "ckptio/preemption_guard.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "core/spawn.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"
#include "preempt/signal_flags.hpp"

namespace ckptio {
namespace {

constexpr int kRequeueBit = 1;
constexpr int kTermBit = 2;
constexpr int kWalltimeBit = 4;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fixed(double value, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value) return std::nullopt;
  return std::string(value);
}

int restart_count() {
  const std::optional<std::string> value = env("SLURM_RESTART_COUNT");
  if (!value) return 0;
  try {
    return std::stoi(*value);
  } catch (...) {
    return 0;
  }
}

StopReason reason_of(int bits) {
  if (bits & kRequeueBit) return StopReason::RequeueSignal;
  if (bits & kWalltimeBit) return StopReason::Walltime;
  if (bits & kTermBit) return StopReason::Terminate;
  return StopReason::None;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text;
}

}  // namespace

const char* to_string(StopReason reason) noexcept {
  switch (reason) {
    case StopReason::None:
      return "none";
    case StopReason::RequeueSignal:
      return "requeue signal";
    case StopReason::Terminate:
      return "SIGTERM";
    case StopReason::Walltime:
      return "walltime";
  }
  return "?";
}

// The guard's state: the duplicated communicator, the reduction in flight and what rank 0
// knows about the walltime.
struct PreemptionGuard::Impl {
  Impl(MPI_Comm user_comm, const CheckpointIO& checkpoint_io, PreemptionOptions preemption_options)
      : comm(user_comm), io(&checkpoint_io), options(std::move(preemption_options)) {}
  // Completes a reduction still in flight before the communicator is freed.
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  int complete_reduction();
  void start_reduction(std::int64_t global_step);
  int local_bits(std::int64_t global_step);
  void probe_walltime();
  double lead_seconds() const;
  std::string lead_description() const;
  std::string requeue_decision() const;  // empty when a requeue is due, else why not

  detail::Comm comm;
  const CheckpointIO* io;
  PreemptionOptions options;
  int send_bits = 0;
  int recv_bits = 0;
  MPI_Request request = MPI_REQUEST_NULL;
  std::int64_t request_step = -1;  // the step whose call started the reduction in flight
  std::int64_t last_step = -1;
  bool last_answer = false;
  StopReason reason = StopReason::None;
  bool seen_requeue_signal = false;
  bool seen_term = false;
  bool walltime_short = false;
  // Walltime state (rank 0 only).
  double deadline = -1.0;    // monotonic seconds at which the job ends; < 0: unknown
  double last_probe = -1.0;  // monotonic seconds of the last squeue
  double last_step_time = -1.0;
  double step_seconds = 0.0;  // the longest recent step
  bool lead_logged = false;
};

PreemptionGuard::PreemptionGuard(MPI_Comm comm, const CheckpointIO& io, PreemptionOptions options)
    : impl_(std::make_unique<Impl>(comm, io, std::move(options))) {
  const PreemptionOptions& opts = impl_->options;
  std::optional<detail::Failure> failure;
  try {
    if (opts.poll_seconds <= 0) throw UsageError("poll_seconds must be > 0");
    if (opts.save_time_factor < 0 || opts.margin_seconds < 0)
      throw UsageError("save_time_factor and margin_seconds must be >= 0");
    detail::install_signal_handlers(opts.requeue_signal, opts.handle_sigterm);
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto agreed = detail::agree_failure(impl_->comm, failure, "PreemptionGuard")) {
    // This rank's handlers are its own only when it installed them (a second guard's
    // install fails and must leave the first guard's handlers in place).
    if (!failure) detail::restore_signal_handlers();
    detail::rethrow(*agreed);  // impl_ frees the communicator
  }

  const std::optional<std::string> job = env("SLURM_JOB_ID");
  if (job) {
    detail::log_info("preemption: Slurm job ", *job, ", SLURM_RESTART_COUNT=", restart_count(), "; ",
                     detail::signal_name(opts.requeue_signal), " saves and requeues",
                     opts.handle_sigterm ? ", SIGTERM saves and exits" : "");
  } else {
    detail::log_info("preemption: not under Slurm (no SLURM_JOB_ID); ", detail::signal_name(opts.requeue_signal),
                     " and SIGTERM save and exit without requeueing");
  }
  if (impl_->comm.rank() == 0 && job && opts.watch_walltime) {
    impl_->last_probe = now_seconds();
    impl_->probe_walltime();
  }
}

PreemptionGuard::Impl::~Impl() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && request != MPI_REQUEST_NULL) MPI_Wait(&request, MPI_STATUS_IGNORE);
}

PreemptionGuard::~PreemptionGuard() {
  impl_.reset();
  detail::restore_signal_handlers();
}

StopReason PreemptionGuard::reason() const noexcept { return impl_->reason; }

void PreemptionGuard::Impl::probe_walltime() {
  const std::string job = env("SLURM_JOB_ID").value_or("");
  const detail::SpawnResult result =
      detail::spawn_and_wait({options.squeue, "-h", "-j", job, "-o", "%L"}, options.command_timeout_seconds);
  const double now = now_seconds();
  std::optional<long> left;
  if (result.started && result.exit_status == 0) left = detail::parse_slurm_duration(result.output);
  if (!result.started || result.exit_status != 0) {
    detail::log_warn("preemption: cannot read the remaining walltime of job ", job, " with ", options.squeue, ": ",
                     result.started && result.error.empty()
                         ? trimmed(result.output) + " (exit status " + std::to_string(result.exit_status) + ")"
                         : result.error,
                     "; retrying in ", fixed(options.poll_seconds, 0), " s");
    return;
  }
  if (!left) {
    if (deadline < 0 && !lead_logged)
      detail::log_info("preemption: job ", job, " has no time limit (squeue says '", trimmed(result.output), "')");
    lead_logged = true;
    deadline = -1.0;
    return;
  }
  deadline = now + static_cast<double>(*left);
  if (!lead_logged) {
    detail::log_info("preemption: job ", job, " has ", *left, " s of walltime left; stopping when less than ",
                     fixed(lead_seconds(), 1), " s are left (", lead_description(), ")");
    lead_logged = true;
  } else {
    detail::log_debug("preemption: ", *left, " s of walltime left");
  }
}

double PreemptionGuard::Impl::lead_seconds() const {
  if (options.lead_seconds >= 0) return options.lead_seconds;
  return io->recent_save_seconds() * options.save_time_factor + options.margin_seconds + 2 * step_seconds;
}

std::string PreemptionGuard::Impl::lead_description() const {
  if (options.lead_seconds >= 0) return "fixed lead time";
  return "longest recent save " + fixed(io->recent_save_seconds(), 3) + " s x " + fixed(options.save_time_factor, 1) +
         " + margin " + fixed(options.margin_seconds, 1) + " s" +
         (step_seconds > 0 ? " + 2 steps of " + fixed(step_seconds, 3) + " s" : " + 2 steps (not measured yet)");
}

int PreemptionGuard::Impl::local_bits(std::int64_t global_step) {
  int bits = 0;
  if (detail::requeue_signal_received()) {
    bits |= kRequeueBit;
    if (!seen_requeue_signal)
      detail::log_line(detail::LogLevel::Info,
                       std::string("preemption: ") + detail::signal_name(options.requeue_signal) +
                           " received on rank " + std::to_string(comm.rank()) + " (by step " +
                           std::to_string(global_step) + ")",
                       true);
    seen_requeue_signal = true;
  }
  if (detail::sigterm_received()) {
    bits |= kTermBit;
    if (!seen_term)
      detail::log_line(detail::LogLevel::Info,
                       "preemption: SIGTERM received on rank " + std::to_string(comm.rank()) + " (by step " +
                           std::to_string(global_step) + ")",
                       true);
    seen_term = true;
  }
  if (comm.rank() == 0) {
    const double now = now_seconds();
    if (last_step_time >= 0) step_seconds = std::max(now - last_step_time, 0.9 * step_seconds);
    last_step_time = now;
    if (deadline >= 0 || (last_probe >= 0 && now - last_probe >= options.poll_seconds)) {
      if (last_probe >= 0 && now - last_probe >= options.poll_seconds) {
        last_probe = now;
        probe_walltime();
      }
      if (deadline >= 0 && deadline - now < lead_seconds()) {
        if (!walltime_short)
          detail::log_info("preemption: ", fixed(deadline - now, 1), " s of walltime left at step ", global_step,
                           ", less than the lead time ", fixed(lead_seconds(), 1), " s (", lead_description(), ")");
        walltime_short = true;
      }
    }
    if (walltime_short) bits |= kWalltimeBit;
  }
  return bits;
}

void PreemptionGuard::Impl::start_reduction(std::int64_t global_step) {
  send_bits = local_bits(global_step);
  recv_bits = 0;
  detail::check_mpi(MPI_Iallreduce(&send_bits, &recv_bits, 1, MPI_INT, MPI_BOR, comm.get(), &request),
                    "MPI_Iallreduce");
  request_step = global_step;
}

int PreemptionGuard::Impl::complete_reduction() {
  if (request == MPI_REQUEST_NULL) return 0;
  detail::check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
  request = MPI_REQUEST_NULL;
  return recv_bits;
}

bool PreemptionGuard::should_stop(std::int64_t global_step) {
  Impl& state = *impl_;
  if (global_step == state.last_step) return state.last_answer;
  state.last_step = global_step;
  if (state.last_answer) return true;
  const int agreed = state.complete_reduction();
  if (agreed != 0) {
    state.reason = reason_of(agreed);
    state.last_answer = true;
    state.io->flush_next_save();  // the save before the exit must reach the shared root
    detail::log_info("preemption: agreed stop at step ", global_step, " (", to_string(state.reason), ", seen by step ",
                     state.request_step, ")");
    return true;
  }
  state.start_reduction(global_step);
  return false;
}

bool PreemptionGuard::requeue_due() const { return impl_->requeue_decision().empty(); }

std::string PreemptionGuard::Impl::requeue_decision() const {
  if (reason != StopReason::RequeueSignal && reason != StopReason::Walltime)
    return reason == StopReason::None ? "no stop was agreed" : "SIGTERM stops without requeueing";
  if (!options.requeue) return "requeueing is disabled";
  if (!env("SLURM_JOB_ID")) return "not under Slurm (no SLURM_JOB_ID)";
  if (options.max_requeues >= 0 && restart_count() >= options.max_requeues)
    return "SLURM_RESTART_COUNT=" + std::to_string(restart_count()) +
           " reached max_requeues=" + std::to_string(options.max_requeues);
  return "";
}

void PreemptionGuard::exit_after_save() {
  Impl& state = *impl_;
  try {
    state.complete_reduction();
  } catch (const std::exception& e) {
    detail::log_error("preemption: ", e.what());
  }
  MPI_Barrier(state.comm.get());
  const std::string why_not = state.requeue_decision();
  const bool requeue = why_not.empty();
  const std::string job = env("SLURM_JOB_ID").value_or("");
  const PreemptionOptions& options = state.options;
  const std::int64_t last_step = state.last_step;
  const int rank = state.comm.rank();
  detail::log_info("preemption: stopping at step ", last_step, " (", to_string(state.reason),
                   "); recent saves took up to ", fixed(state.io->recent_save_seconds(), 3), " s; ",
                   requeue ? "requeueing job " + job : "not requeueing: " + why_not, "; exit status ",
                   kPreemptedExitCode);
  const int terms_before = detail::sigterm_count();
  state.comm = detail::Comm();  // frees the duplicate before MPI_Finalize
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  if (requeue) {
    if (rank == 0) {
      const detail::SpawnResult result =
          detail::spawn_and_wait({options.scontrol, "requeue", "Incomplete", job}, options.command_timeout_seconds);
      if (result.started && result.exit_status == 0) {
        detail::log_info("preemption: requeued job ", job, " (", options.scontrol, " requeue Incomplete ", job, ")");
      } else {
        detail::log_error("preemption: requeue of job ", job, " failed: ",
                          result.started && result.error.empty()
                              ? trimmed(result.output) + " (" + options.scontrol + " exit status " +
                                    std::to_string(result.exit_status) + ")"
                              : result.error,
                          "; the checkpoint of step ", last_step,
                          " is in place: resubmit the job (or set RequeueExit=75 in slurm.conf)");
      }
    } else {
      // Wait for the requeue's SIGTERM (or mpirun's, once rank 0 has exited), so that rank 0
      // is not killed by an early exit of ours before it has requeued the job.
      const double until = now_seconds() + options.requeue_wait_seconds;
      while (detail::sigterm_count() == terms_before && now_seconds() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(kPreemptedExitCode);
}

}  // namespace ckptio
