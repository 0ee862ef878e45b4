#include "io/root_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "core/quoted.hpp"
#include "core/spawn.hpp"
#include "core/untrusted_json.hpp"
#include "io/fs_util.hpp"

namespace ckptio::detail {
namespace {

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string slurm_job_id() { return environment("SLURM_JOB_ID"); }
std::string slurm_cluster() { return environment("SLURM_CLUSTER_NAME"); }

// How long squeue may take to say whether a holder's job has ended.
constexpr double kSqueueTimeoutSeconds = 10.0;

// A zombie (exited, not yet reaped: common in containers whose init does not reap
// orphans) counts as dead.
bool process_alive(long pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  const auto stat = read_small_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return true;  // no /proc: trust kill()
  const auto paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return true;
  const char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X';
}

// What a lock file says about its holder. A lock that is not the JSON object ckptio writes
// (host and pid of the right types) is unreadable: a holder that died while writing it, or
// damage; either way it protects nothing.
struct LockHolder {
  bool readable = false;
  std::string host, slurm_job_id, slurm_cluster, since;
  long pid = 0;
};

LockHolder parse_lock(const std::string& content) {
  LockHolder holder;
  nlohmann::json j;
  try {
    j = parse_untrusted_json(content, "lock file");
  } catch (const Error&) {
    return holder;
  }
  if (!j.is_object()) return holder;
  const auto host = j.find("host"), pid = j.find("pid");
  if (host == j.end() || !host->is_string() || pid == j.end() || !pid->is_number_integer()) return holder;
  auto text = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  holder.readable = true;
  holder.host = host->get<std::string>();
  holder.pid = pid->get<long>();
  holder.slurm_job_id = text("slurm_job_id");
  holder.slurm_cluster = text("slurm_cluster");
  holder.since = text("since");
  return holder;
}

// True when the holder's Slurm job and ours belong to one cluster (a lock written before
// the cluster was recorded counts as ours).
bool same_cluster(const LockHolder& holder) {
  return holder.slurm_cluster.empty() || holder.slurm_cluster == slurm_cluster();
}

// The job's state as squeue prints it (COMPLETED, RUNNING, ...), "UNKNOWN-JOB" when
// slurmctld does not know the job (purged after MinJobAge), or nullopt with `why` set when
// squeue gave no answer.
std::optional<std::string> slurm_job_state(const std::string& squeue, const std::string& job, std::string& why) {
  const SpawnResult r = spawn_and_wait({squeue, "-h", "-t", "all", "-j", job, "-o", "%T"}, kSqueueTimeoutSeconds);
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (r.started && r.exit_status == 0 && !out.empty() && out.find('\n') == std::string::npos) return out;
  if (r.started && out.find("Invalid job id") != std::string::npos) return std::string("UNKNOWN-JOB");
  why = !r.error.empty() ? r.error : printable_text(out, 200) + " (exit status " + std::to_string(r.exit_status) + ")";
  return std::nullopt;
}

bool job_state_has_ended(const std::string& state) {
  for (const char* ended : {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
                            "DEADLINE", "OUT_OF_MEMORY", "UNKNOWN-JOB"})
    if (state == ended) return true;
  return false;
}

// Why the lock of `holder` may be taken over; empty when its holder may be alive, with
// `refusal` then saying why it counts as alive when that is not obvious.
std::string stale_reason(const LockHolder& holder, const std::string& squeue, std::string& refusal) {
  if (!holder.readable) return "its content is unreadable (a holder that died while writing it)";
  const bool same_host = holder.host == host_name();
  if (same_host && !process_alive(holder.pid)) return "process " + std::to_string(holder.pid) + " on this host is gone";
  if (holder.slurm_job_id.empty()) {
    if (!same_host) refusal = "a holder on another host without a Slurm job cannot be proven gone";
    return {};
  }
  if (slurm_job_id().empty()) {
    refusal = "only a Slurm job of the same cluster can ask Slurm whether the holder's job has ended";
    return {};
  }
  if (!same_cluster(holder)) {
    refusal = "the holder ran on another Slurm cluster (" + printable_text(holder.slurm_cluster, 60) + ")";
    return {};
  }
  if (holder.slurm_job_id == slurm_job_id() && !same_host)
    return "it belongs to an earlier run of this Slurm job (" + holder.slurm_job_id + ") on host " + holder.host;
  if (holder.slurm_job_id == slurm_job_id()) return {};  // this very run, alive on this host
  std::string why;
  const auto state = slurm_job_state(squeue, holder.slurm_job_id, why);
  if (!state) {
    refusal = "Slurm did not say whether job " + printable_text(holder.slurm_job_id, 40) + " has ended: " + why;
    return {};
  }
  if (job_state_has_ended(*state))
    return "Slurm job " + holder.slurm_job_id + " on host " + holder.host + " has ended (" +
           (*state == "UNKNOWN-JOB" ? std::string("no longer known to slurmctld") : *state) + ")";
  refusal = "Slurm job " + printable_text(holder.slurm_job_id, 40) + " is " + printable_text(*state, 40);
  return {};
}

}  // namespace

RootLock::RootLock(const std::filesystem::path& root, const std::string& squeue) {
  const std::filesystem::path path = root / kFileName;
  nlohmann::json me = {{"host", host_name()},
                       {"pid", static_cast<long>(::getpid())},
                       {"slurm_job_id", slurm_job_id()},
                       {"slurm_cluster", slurm_cluster()},
                       {"since", iso_time_now()}};
  const std::string content = me.dump() + "\n";
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) {
      const ssize_t n = ::write(fd, content.data(), content.size());
      ::close(fd);
      if (n != static_cast<ssize_t>(content.size())) {
        ::unlink(path.c_str());
        throw IoError("cannot write lock file " + path.string());
      }
      path_ = path;
      content_ = content;
      return;
    }
    if (errno != EEXIST) throw IoError("cannot create lock file " + path.string() + ": " + std::strerror(errno));
    std::optional<std::string> existing;
    try {
      existing = read_small_file(path, 1 << 16, "lock file");
    } catch (const Error& e) {
      throw LockedError("checkpoint root " + root.string() + " has a lock file that cannot be read (" + e.what() +
                        "); remove " + path.string() + " if no job is writing there");
    }
    if (!existing) continue;  // released meanwhile
    const LockHolder holder = parse_lock(*existing);
    std::string refusal;
    const std::string reason = stale_reason(holder, squeue, refusal);
    if (reason.empty()) {
      throw LockedError(
          "checkpoint root " + root.string() + " is in use by another job (pid " + std::to_string(holder.pid) +
          " on host " + printable_text(holder.host, 100) +
          (holder.slurm_job_id.empty() ? std::string() : ", Slurm job " + printable_text(holder.slurm_job_id, 40)) +
          ", since " + (holder.since.empty() ? std::string("?") : printable_text(holder.since, 40)) +
          ", says lock file " + path.string() + ")" + (refusal.empty() ? std::string() : "; " + refusal) +
          ". If that job is gone, remove " + path.string());
    }
    log_warn("taking over the stale lock of ", root.string(), ": ", reason);
    remove_file_if_exists(path);
  }
  throw LockedError("could not take the lock of checkpoint root " + root.string() + " (contended)");
}

RootLock::~RootLock() { release(); }

RootLock::RootLock(RootLock&& other) noexcept
    : path_(std::exchange(other.path_, {})), content_(std::exchange(other.content_, {})) {}

RootLock& RootLock::operator=(RootLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::exchange(other.path_, {});
    content_ = std::exchange(other.content_, {});
  }
  return *this;
}

void RootLock::release() noexcept {
  if (path_.empty()) return;
  try {
    // Only remove the file if it is still ours (it may have been taken over).
    if (read_small_file(path_, 1 << 16) == content_) ::unlink(path_.c_str());
  } catch (...) {
  }
  path_.clear();
}

}  // namespace ckptio::detail
