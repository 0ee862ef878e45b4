#include "core/fault.hpp"

#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>

#include "ckptio/error.hpp"
#include "core/log.hpp"

namespace ckptio::detail {

#if CKPTIO_FAULT_INJECTION

namespace {

struct FaultSpec {
  std::string point;
  int rank = -1;  // -1: every rank
  int nth = 0;    // 0: every time
  enum class Action { Kill, Throw, Stall } action = Action::Kill;
};

std::optional<FaultSpec> parse_spec() {
  const char* env = std::getenv("CKPTIO_FAULT_INJECT");
  if (!env || !*env) return std::nullopt;
  std::string s(env);
  FaultSpec spec;
  if (auto colon = s.rfind(':'); colon != std::string::npos) {
    const std::string action = s.substr(colon + 1);
    spec.action = action == "throw"   ? FaultSpec::Action::Throw
                  : action == "stall" ? FaultSpec::Action::Stall
                                      : FaultSpec::Action::Kill;
    s.resize(colon);
  }
  if (auto hash = s.find('#'); hash != std::string::npos) {
    spec.nth = std::atoi(s.c_str() + hash + 1);
    s.resize(hash);
  }
  if (auto at = s.find('@'); at != std::string::npos) {
    spec.rank = std::atoi(s.c_str() + at + 1);
    s.resize(at);
  }
  spec.point = s;
  return spec;
}

}  // namespace

void fault_point(std::string_view point, int rank) {
  static const std::optional<FaultSpec> spec = parse_spec();
  static int reached = 0;
  if (!spec || spec->point != point || (spec->rank >= 0 && spec->rank != rank)) return;
  if (spec->nth > 0 && ++reached != spec->nth) return;
  if (spec->action == FaultSpec::Action::Kill) {
    log_line(LogLevel::Warn, "fault injection: killing this process at " + std::string(point), true);
    ::kill(::getpid(), SIGKILL);
  }
  if (spec->action == FaultSpec::Action::Stall) {
    log_line(LogLevel::Warn, "fault injection: stalling at " + std::string(point), true);
    for (;;) ::pause();  // signal handlers only set flags; only SIGKILL or a default action ends this
  }
  throw IoError("injected fault at " + std::string(point));
}

bool fault_injection_compiled() noexcept { return true; }

#else  // a user's build: no way to kill the process from the environment

void fault_point(std::string_view, int) {}

bool fault_injection_compiled() noexcept { return false; }

#endif

}  // namespace ckptio::detail
