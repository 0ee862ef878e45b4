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
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"
#include "preempt/signal_flags.hpp"
#include "preempt/spawn.hpp"

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

PreemptionGuard::PreemptionGuard(MPI_Comm comm, const CheckpointIO& io, PreemptionOptions options)
    : io_(&io), options_(std::move(options)) {
  detail::check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  MPI_Comm_rank(comm_, &rank_);
  detail::Comm agreement(comm_);
  std::optional<detail::Failure> failure;
  try {
    if (options_.poll_seconds <= 0) throw UsageError("PreemptionGuard: poll_seconds must be > 0");
    if (options_.save_time_factor < 0 || options_.margin_seconds < 0)
      throw UsageError("PreemptionGuard: save_time_factor and margin_seconds must be >= 0");
    detail::install_signal_handlers(options_.requeue_signal, options_.handle_sigterm);
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto agreed = detail::agree_failure(agreement, failure, "PreemptionGuard")) {
    if (!failure) detail::restore_signal_handlers();
    MPI_Comm_free(&comm_);
    detail::rethrow(*agreed);
  }

  const std::optional<std::string> job = env("SLURM_JOB_ID");
  if (job) {
    detail::log_info("preemption: Slurm job ", *job, ", SLURM_RESTART_COUNT=", restart_count(), "; ",
                     detail::signal_name(options_.requeue_signal), " saves and requeues",
                     options_.handle_sigterm ? ", SIGTERM saves and exits" : "");
  } else {
    detail::log_info("preemption: not under Slurm (no SLURM_JOB_ID); ", detail::signal_name(options_.requeue_signal),
                     " and SIGTERM save and exit without requeueing");
  }
  if (rank_ == 0 && job && options_.watch_walltime) {
    last_probe_ = now_seconds();
    probe_walltime();
  }
}

PreemptionGuard::~PreemptionGuard() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
    MPI_Comm_free(&comm_);
  }
  detail::restore_signal_handlers();
}

void PreemptionGuard::probe_walltime() {
  const std::string job = env("SLURM_JOB_ID").value_or("");
  const detail::SpawnResult result =
      detail::spawn_and_wait({options_.squeue, "-h", "-j", job, "-o", "%L"}, options_.command_timeout_seconds);
  const double now = now_seconds();
  std::optional<long> left;
  if (result.started && result.exit_status == 0) left = detail::parse_slurm_duration(result.output);
  if (!result.started || result.exit_status != 0) {
    detail::log_warn("preemption: cannot read the remaining walltime of job ", job, " with ", options_.squeue, ": ",
                     result.started && result.error.empty()
                         ? trimmed(result.output) + " (exit status " + std::to_string(result.exit_status) + ")"
                         : result.error,
                     "; retrying in ", fixed(options_.poll_seconds, 0), " s");
    return;
  }
  if (!left) {
    if (deadline_ < 0 && !lead_logged_)
      detail::log_info("preemption: job ", job, " has no time limit (squeue says '", trimmed(result.output), "')");
    lead_logged_ = true;
    deadline_ = -1.0;
    return;
  }
  deadline_ = now + static_cast<double>(*left);
  if (!lead_logged_) {
    detail::log_info("preemption: job ", job, " has ", *left, " s of walltime left; stopping when less than ",
                     fixed(lead_seconds(), 1), " s are left (", lead_description(), ")");
    lead_logged_ = true;
  } else {
    detail::log_debug("preemption: ", *left, " s of walltime left");
  }
}

double PreemptionGuard::lead_seconds() const {
  if (options_.lead_seconds >= 0) return options_.lead_seconds;
  return io_->recent_save_seconds() * options_.save_time_factor + options_.margin_seconds + 2 * step_seconds_;
}

std::string PreemptionGuard::lead_description() const {
  if (options_.lead_seconds >= 0) return "fixed lead time";
  return "longest recent save " + fixed(io_->recent_save_seconds(), 3) + " s x " + fixed(options_.save_time_factor, 1) +
         " + margin " + fixed(options_.margin_seconds, 1) + " s" +
         (step_seconds_ > 0 ? " + 2 steps of " + fixed(step_seconds_, 3) + " s" : " + 2 steps (not measured yet)");
}

int PreemptionGuard::local_bits(std::int64_t global_step) {
  int bits = 0;
  if (detail::requeue_signal_received()) {
    bits |= kRequeueBit;
    if (!seen_requeue_signal_)
      detail::log_line(detail::LogLevel::Info,
                       std::string("preemption: ") + detail::signal_name(options_.requeue_signal) +
                           " received on rank " + std::to_string(rank_) + " (by step " + std::to_string(global_step) +
                           ")",
                       true);
    seen_requeue_signal_ = true;
  }
  if (detail::sigterm_received()) {
    bits |= kTermBit;
    if (!seen_term_)
      detail::log_line(detail::LogLevel::Info,
                       "preemption: SIGTERM received on rank " + std::to_string(rank_) + " (by step " +
                           std::to_string(global_step) + ")",
                       true);
    seen_term_ = true;
  }
  if (rank_ == 0) {
    const double now = now_seconds();
    if (last_step_time_ >= 0) step_seconds_ = std::max(now - last_step_time_, 0.9 * step_seconds_);
    last_step_time_ = now;
    if (deadline_ >= 0 || (last_probe_ >= 0 && now - last_probe_ >= options_.poll_seconds)) {
      if (last_probe_ >= 0 && now - last_probe_ >= options_.poll_seconds) {
        last_probe_ = now;
        probe_walltime();
      }
      if (deadline_ >= 0 && deadline_ - now < lead_seconds()) {
        if (!walltime_short_)
          detail::log_info("preemption: ", fixed(deadline_ - now, 1), " s of walltime left at step ", global_step,
                           ", less than the lead time ", fixed(lead_seconds(), 1), " s (", lead_description(), ")");
        walltime_short_ = true;
      }
    }
    if (walltime_short_) bits |= kWalltimeBit;
  }
  return bits;
}

void PreemptionGuard::start_reduction(std::int64_t global_step) {
  send_bits_ = local_bits(global_step);
  recv_bits_ = 0;
  detail::check_mpi(MPI_Iallreduce(&send_bits_, &recv_bits_, 1, MPI_INT, MPI_BOR, comm_, &request_), "MPI_Iallreduce");
  request_step_ = global_step;
}

int PreemptionGuard::complete_reduction() {
  if (request_ == MPI_REQUEST_NULL) return 0;
  detail::check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
  request_ = MPI_REQUEST_NULL;
  return recv_bits_;
}

bool PreemptionGuard::should_stop(std::int64_t global_step) {
  if (global_step == last_step_) return last_answer_;
  last_step_ = global_step;
  if (last_answer_) return true;
  const int agreed = complete_reduction();
  if (agreed != 0) {
    reason_ = reason_of(agreed);
    agreed_bits_ = agreed;
    last_answer_ = true;
    detail::log_info("preemption: agreed stop at step ", global_step, " (", to_string(reason_), ", seen by step ",
                     request_step_, ")");
    return true;
  }
  start_reduction(global_step);
  return false;
}

bool PreemptionGuard::requeue_due() const { return requeue_decision().empty(); }

std::string PreemptionGuard::requeue_decision() const {
  if (reason_ != StopReason::RequeueSignal && reason_ != StopReason::Walltime)
    return reason_ == StopReason::None ? "no stop was agreed" : "SIGTERM stops without requeueing";
  if (!options_.requeue) return "requeueing is disabled";
  if (!env("SLURM_JOB_ID")) return "not under Slurm (no SLURM_JOB_ID)";
  if (options_.max_requeues >= 0 && restart_count() >= options_.max_requeues)
    return "SLURM_RESTART_COUNT=" + std::to_string(restart_count()) +
           " reached max_requeues=" + std::to_string(options_.max_requeues);
  return "";
}

void PreemptionGuard::exit_after_save() {
  try {
    complete_reduction();
  } catch (const std::exception& e) {
    detail::log_error("preemption: ", e.what());
  }
  MPI_Barrier(comm_);
  const std::string why_not = requeue_decision();
  const bool requeue = why_not.empty();
  const std::string job = env("SLURM_JOB_ID").value_or("");
  detail::log_info("preemption: stopping at step ", last_step_, " (", to_string(reason_), "); recent saves took up to ",
                   fixed(io_->recent_save_seconds(), 3), " s; ",
                   requeue ? "requeueing job " + job : "not requeueing: " + why_not, "; exit status ",
                   kPreemptedExitCode);
  const int terms_before = detail::sigterm_count();
  MPI_Comm_free(&comm_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  if (requeue) {
    if (rank_ == 0) {
      const detail::SpawnResult result =
          detail::spawn_and_wait({options_.scontrol, "requeue", "Incomplete", job}, options_.command_timeout_seconds);
      if (result.started && result.exit_status == 0) {
        detail::log_info("preemption: requeued job ", job, " (", options_.scontrol, " requeue Incomplete ", job, ")");
      } else {
        detail::log_error("preemption: requeue of job ", job, " failed: ",
                          result.started && result.error.empty()
                              ? trimmed(result.output) + " (" + options_.scontrol + " exit status " +
                                    std::to_string(result.exit_status) + ")"
                              : result.error,
                          "; the checkpoint of step ", last_step_,
                          " is in place: resubmit the job (or set RequeueExit=75 in slurm.conf)");
      }
    } else {
      // Wait for the requeue's SIGTERM (or mpirun's, once rank 0 has exited), so that rank 0
      // is not killed by an early exit of ours before it has requeued the job.
      const double until = now_seconds() + options_.requeue_wait_seconds;
      while (detail::sigterm_count() == terms_before && now_seconds() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(kPreemptedExitCode);
}

}  // namespace ckptio
