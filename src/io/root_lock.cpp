#include "io/root_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "core/quoted.hpp"
#include "core/untrusted_json.hpp"
#include "io/fs_util.hpp"

namespace ckptio::detail {
namespace {

std::string slurm_job_id() {
  const char* id = std::getenv("SLURM_JOB_ID");
  return id ? id : "";
}

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
  std::string host, slurm_job_id, since;
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
  holder.since = text("since");
  return holder;
}

// Why the lock described by `content` may be taken over; empty when its holder may be alive.
std::string stale_reason(const LockHolder& holder) {
  if (!holder.readable) return "its content is unreadable (a holder that died while writing it)";
  if (holder.host == host_name() && !process_alive(holder.pid))
    return "process " + std::to_string(holder.pid) + " on this host is gone";
  if (!holder.slurm_job_id.empty() && holder.slurm_job_id == slurm_job_id() && holder.host != host_name())
    return "it belongs to an earlier run of this Slurm job (" + holder.slurm_job_id + ") on host " + holder.host;
  return {};
}

}  // namespace

RootLock::RootLock(const std::filesystem::path& root) {
  const std::filesystem::path path = root / kFileName;
  nlohmann::json me = {{"host", host_name()},
                       {"pid", static_cast<long>(::getpid())},
                       {"slurm_job_id", slurm_job_id()},
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
    const std::string reason = stale_reason(holder);
    if (reason.empty()) {
      throw LockedError(
          "checkpoint root " + root.string() + " is in use by another job (pid " + std::to_string(holder.pid) +
          " on host " + printable_text(holder.host, 100) +
          (holder.slurm_job_id.empty() ? std::string() : ", Slurm job " + printable_text(holder.slurm_job_id, 40)) +
          ", since " + (holder.since.empty() ? std::string("?") : printable_text(holder.since, 40)) +
          ", says lock file " + path.string() + "). If that job is gone, remove " + path.string());
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
