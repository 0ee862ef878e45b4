// The lock file that keeps two jobs from writing into one checkpoint root at once.
// <root>/.ckptio.lock holds JSON naming host, pid and Slurm job id of the holder. A lock
// whose holder is provably gone (same host and the pid is dead; or the same Slurm job id
// seen from another host, i.e. a requeued job) is taken over with a warning.
#pragma once

#include <filesystem>
#include <string>

namespace ckptio::detail {

class RootLock {
 public:
  RootLock() = default;
  // Not collective: call on one rank. Throws LockedError when a live holder has it.
  explicit RootLock(const std::filesystem::path& root);
  ~RootLock();
  RootLock(RootLock&& other) noexcept;
  RootLock& operator=(RootLock&& other) noexcept;
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;

  // Removes the lock file if it is still this process's.
  void release() noexcept;
  bool held() const { return !path_.empty(); }

  static constexpr const char* kFileName = ".ckptio.lock";

 private:
  std::filesystem::path path_;
  std::string content_;
};

}  // namespace ckptio::detail
