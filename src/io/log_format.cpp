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
double thread_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}
}  // namespace

PhaseTimes::PhaseTimes() : at_(std::chrono::steady_clock::now()), cpu_at_(thread_cpu_seconds()) {}

void PhaseTimes::done(const char* name) {
  const double cpu = thread_cpu_seconds();
  if (!text_.empty()) text_ += ", ";
  text_ += std::string(name) + " " + fixed(seconds_since(at_), 3) + " (cpu " + fixed(cpu - cpu_at_, 3) + ")";
  at_ = std::chrono::steady_clock::now();
  cpu_at_ = cpu;
}

}  // namespace ckptio::detail
