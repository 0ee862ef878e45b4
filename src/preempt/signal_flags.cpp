#include "preempt/signal_flags.hpp"

#include <csignal>
#include <cstring>
#include <string>

#include "ckptio/error.hpp"

namespace ckptio::detail {
namespace {

volatile std::sig_atomic_t g_requeue_flag = 0;
volatile std::sig_atomic_t g_term_flag = 0;

bool g_installed = false;
int g_requeue_signal = 0;
bool g_term_installed = false;
struct sigaction g_old_requeue;
struct sigaction g_old_term;

extern "C" void on_requeue_signal(int) { g_requeue_flag = 1; }
extern "C" void on_sigterm(int) { g_term_flag = g_term_flag + 1; }

void install(int signal, void (*handler)(int), struct sigaction* old) {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  // Interrupted system calls resume: MPI and HDF5 never see EINTR because of us.
  action.sa_flags = SA_RESTART;
  if (sigaction(signal, &action, old) != 0)
    throw UsageError(std::string("cannot install a handler for ") + signal_name(signal) + ": " + std::strerror(errno));
}

}  // namespace

void install_signal_handlers(int requeue_signal, bool handle_sigterm) {
  if (g_installed) throw UsageError("a PreemptionGuard already exists in this process; only one may");
  if (requeue_signal != 0 && requeue_signal != SIGUSR1 && requeue_signal != SIGUSR2)
    throw UsageError("requeue_signal must be SIGUSR1, SIGUSR2 or 0, not " + std::to_string(requeue_signal));
  g_requeue_flag = 0;
  g_term_flag = 0;
  if (requeue_signal != 0) install(requeue_signal, on_requeue_signal, &g_old_requeue);
  g_requeue_signal = requeue_signal;
  if (handle_sigterm) {
    try {
      install(SIGTERM, on_sigterm, &g_old_term);
    } catch (...) {
      if (requeue_signal != 0) sigaction(requeue_signal, &g_old_requeue, nullptr);
      throw;
    }
  }
  g_term_installed = handle_sigterm;
  g_installed = true;
}

void restore_signal_handlers() noexcept {
  if (!g_installed) return;
  if (g_requeue_signal != 0) sigaction(g_requeue_signal, &g_old_requeue, nullptr);
  if (g_term_installed) sigaction(SIGTERM, &g_old_term, nullptr);
  g_installed = false;
}

bool requeue_signal_received() noexcept { return g_requeue_flag != 0; }
bool sigterm_received() noexcept { return g_term_flag != 0; }
int sigterm_count() noexcept { return g_term_flag; }

const char* signal_name(int signal) noexcept {
  switch (signal) {
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGTERM:
      return "SIGTERM";
    case 0:
      return "none";
  }
  return "a signal";
}

}  // namespace ckptio::detail
