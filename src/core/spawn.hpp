// Running a helper program (squeue, scontrol: the lock asks Slurm about a holder, the
// preemption guard requeues) with posix_spawn, never fork: forking a process
// that has registered network memory (InfiniBand) is unsafe, and no shell is involved.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ckptio::detail {

struct SpawnResult {
  bool started = false;  // false: the program could not be started (see error)
  int exit_status = -1;  // the exit status, or 128 + signal number when a signal ended it
  std::string output;    // its standard output and standard error, together
  std::string error;     // why it could not be started
};

// Runs argv[0] (searched in PATH when it has no slash) with argv, waits for it and returns
// what it printed. A program still running after timeout_seconds is killed (SIGKILL) and
// reported with exit status 128 + 9 and "timed out" in error. Not collective.
SpawnResult spawn_and_wait(const std::vector<std::string>& argv, double timeout_seconds = 30.0);

// Seconds in Slurm's time format as squeue's %L prints it: "[days-]hours:minutes:seconds",
// "minutes:seconds" or "seconds"; nullopt for UNLIMITED, NOT_SET, INVALID or garbage.
std::optional<long> parse_slurm_duration(const std::string& text);

}  // namespace ckptio::detail
