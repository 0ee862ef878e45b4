// Figures in log lines: sizes, durations and rates, formatted the same way everywhere.
#pragma once

#include <chrono>
#include <string>

namespace ckptio::detail {

// "512 B", "1.50 MiB", ...
std::string human_bytes(double bytes);
// `value` with `digits` decimals.
std::string fixed(double value, int digits);
double seconds_since(std::chrono::steady_clock::time_point start);

// Seconds per phase of one operation on this rank, elapsed and CPU time of the calling
// thread, as "plan 0.120 (cpu 0.110), write ...": for the debug log, where the cost of many
// tensors shows (elapsed time alone mostly measures the neighbours on a busy machine).
class PhaseTimes {
 public:
  PhaseTimes();
  // Ends the phase that began when the previous one ended (or at construction).
  void done(const char* name);
  const std::string& text() const { return text_; }

 private:
  // The calling thread's CPU seconds so far (getrusage(RUSAGE_THREAD)).
  struct ThreadCpu {
    double user = 0;
    double system = 0;
  };
  static ThreadCpu thread_cpu();

  std::chrono::steady_clock::time_point at_;
  ThreadCpu cpu_at_;
  std::string text_;
};

}  // namespace ckptio::detail
