// Logging: one line per message on stderr, "[ckptio] [rank R] [level] message".
// Level from CKPTIO_LOG_LEVEL (error, warn, info, debug; default info); only rank 0 prints
// unless CKPTIO_LOG_ALL_RANKS=1.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace ckptio::detail {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// The world rank used in log lines and in the rank filter; set once MPI is known.
void set_log_rank(int rank) noexcept;
int log_rank() noexcept;
bool log_enabled(LogLevel level) noexcept;
// Prints regardless of rank filter when `all_ranks` is true (for per-rank events such as
// "signal received on rank r").
void log_line(LogLevel level, std::string_view message, bool all_ranks = false);

template <class... Args>
void log(LogLevel level, const Args&... args) {
  if (!log_enabled(level)) return;
  std::ostringstream out;
  (out << ... << args);
  log_line(level, out.str());
}
template <class... Args>
void log_info(const Args&... args) {
  log(LogLevel::Info, args...);
}
template <class... Args>
void log_warn(const Args&... args) {
  log(LogLevel::Warn, args...);
}
template <class... Args>
void log_debug(const Args&... args) {
  log(LogLevel::Debug, args...);
}
template <class... Args>
void log_error(const Args&... args) {
  log(LogLevel::Error, args...);
}

}  // namespace ckptio::detail
