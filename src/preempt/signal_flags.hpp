// Process-wide signal flags. The handlers only set a volatile sig_atomic_t; everything else
// (logging, agreeing, saving) happens in normal code that reads the flags.
#pragma once

namespace ckptio::detail {

// Installs handlers for `requeue_signal` (0: none) and, when handle_sigterm, SIGTERM; keeps
// the previous dispositions. Throws UsageError when handlers are already installed or the
// signal is not SIGUSR1/SIGUSR2.
void install_signal_handlers(int requeue_signal, bool handle_sigterm);
// Restores the previous dispositions; the flags keep their values.
void restore_signal_handlers() noexcept;

// Whether the signal arrived since the handlers were installed.
bool requeue_signal_received() noexcept;
bool sigterm_received() noexcept;
// How many SIGTERMs arrived (saturating in practice: a few at most).
int sigterm_count() noexcept;

const char* signal_name(int signal) noexcept;

}  // namespace ckptio::detail
