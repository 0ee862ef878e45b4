#include "core/log.hpp"

#include <strings.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ckptio::detail {
namespace {

std::atomic<int> g_rank{0};

LogLevel level_from_env() {
  const char* v = std::getenv("CKPTIO_LOG_LEVEL");
  if (!v) return LogLevel::Info;
  if (!strcasecmp(v, "error")) return LogLevel::Error;
  if (!strcasecmp(v, "warn") || !strcasecmp(v, "warning")) return LogLevel::Warn;
  if (!strcasecmp(v, "debug")) return LogLevel::Debug;
  return LogLevel::Info;
}

const LogLevel g_level = level_from_env();
const bool g_all_ranks = [] {
  const char* v = std::getenv("CKPTIO_LOG_ALL_RANKS");
  return v && std::strcmp(v, "0") != 0 && *v;
}();

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Error:
      return "error";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Info:
      return "info";
    case LogLevel::Debug:
      return "debug";
  }
  return "?";
}

}  // namespace

void set_log_rank(int rank) noexcept { g_rank.store(rank); }
int log_rank() noexcept { return g_rank.load(); }

bool log_enabled(LogLevel level) noexcept { return static_cast<int>(level) <= static_cast<int>(g_level); }

void log_line(LogLevel level, std::string_view message, bool all_ranks) {
  if (!log_enabled(level)) return;
  const int rank = g_rank.load();
  if (rank != 0 && !g_all_ranks && !all_ranks) return;
  // One fprintf per line so that lines from several threads do not interleave.
  std::fprintf(stderr, "[ckptio] [rank %d] [%s] %.*s\n", rank, level_name(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace ckptio::detail
