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

// Why the lock described by `content` may be taken over; empty when its holder may be alive.
std::string stale_reason(const std::string& content) {
  nlohmann::json j = nlohmann::json::parse(content, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "its content is unreadable (a holder that died while writing it)";
  const std::string host = j.value("host", "");
  const long pid = j.value("pid", 0L);
  const std::string job = j.value("slurm_job_id", "");
  if (host == host_name() && !process_alive(pid)) return "process " + std::to_string(pid) + " on this host is gone";
  if (!job.empty() && job == slurm_job_id() && host != host_name())
    return "it belongs to an earlier run of this Slurm job (" + job + ") on host " + host;
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
      existing = read_small_file(path, 1 << 16);
    } catch (const Error& e) {
      throw LockedError("checkpoint root " + root.string() + " has a lock file that cannot be read (" + e.what() +
                        "); remove " + path.string() + " if no job is writing there");
    }
    if (!existing) continue;  // released meanwhile
    const std::string reason = stale_reason(*existing);
    if (reason.empty()) {
      nlohmann::json j = nlohmann::json::parse(*existing, nullptr, false);
      throw LockedError(
          "checkpoint root " + root.string() + " is in use by another job (pid " + std::to_string(j.value("pid", 0L)) +
          " on host " + j.value("host", std::string("?")) +
          (j.value("slurm_job_id", std::string()).empty() ? std::string()
                                                          : ", Slurm job " + j.value("slurm_job_id", std::string())) +
          ", since " + j.value("since", std::string("?")) + "). If that job is gone, remove " + path.string());
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
