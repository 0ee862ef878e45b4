#include "io/log_format.hpp"

#include <sys/resource.h>

#include <cstdio>

namespace ckptio::detail {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string fixed(double value, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

namespace {
double seconds_of(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }
}  // namespace

PhaseTimes::ThreadCpu PhaseTimes::thread_cpu() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return {seconds_of(usage.ru_utime), seconds_of(usage.ru_stime)};
}

PhaseTimes::PhaseTimes() : at_(std::chrono::steady_clock::now()), cpu_at_(thread_cpu()) {}

void PhaseTimes::done(const char* name) {
  const ThreadCpu cpu = thread_cpu();
  if (!text_.empty()) text_ += ", ";
  text_ += std::string(name) + " " + fixed(seconds_since(at_), 3) + " (cpu user " + fixed(cpu.user - cpu_at_.user, 3) +
           " system " + fixed(cpu.system - cpu_at_.system, 3) + ")";
  at_ = std::chrono::steady_clock::now();
  cpu_at_ = cpu;
}

}  // namespace ckptio::detail
