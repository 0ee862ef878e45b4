// The lock file that keeps two jobs from writing into one checkpoint root at once.
// <root>/.ckptio.lock holds JSON naming the holder's host, pid, Slurm job id and Slurm
// cluster (SLURM_CLUSTER_NAME). A lock is taken over, with a warning, only when its holder
// is provably gone (docs/SLURM.md, "The root lock across nodes"):
//   1. the file is not a lock ckptio wrote (a holder that died while writing it);
//   2. the holder ran on this host and its pid is gone;
//   3. the holder was an earlier run of this very Slurm job (same cluster and job id: a
//      requeued job, on any host);
//   4. the holder's Slurm job, on this job's cluster, has ended, as `squeue` says.
// Anything else (a live job, another host without Slurm, a Slurm that does not answer) is
// refused with a LockedError naming the holder: a live host's lock is never stolen.
#pragma once

#include <filesystem>
#include <string>

namespace ckptio::detail {

class RootLock {
 public:
  RootLock() = default;
  // Not collective: call on one rank. Throws LockedError when a live holder has it.
  // `squeue` is the command asked whether a holder's Slurm job has ended (rule 4).
  explicit RootLock(const std::filesystem::path& root, const std::string& squeue = "squeue");
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
