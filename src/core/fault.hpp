// Fault injection for crash-safety tests. Compiled in only when CMake's option
// CKPTIO_FAULT_INJECTION is ON (the test build); otherwise fault_point() does nothing and
// CKPTIO_FAULT_INJECT is ignored. When compiled in, it is disabled unless CKPTIO_FAULT_INJECT
// is set:
//   CKPTIO_FAULT_INJECT=<point>[@<rank>][#<n>][:<action>]
// <point> is one of the names passed to fault_point(): save.plan, save.write,
// save.after_writes, save.commit, save.latest (rank 0, between the rename and the update
// of `latest`), save.prune, load.read. <rank> limits it to one rank (default: every rank);
// <n> fires only the n-th time this process reaches the point (default: every time);
// <action> is `kill` (SIGKILL the process, the default), `throw` (an IoError
// "injected fault at <point>") or `stall` (log "fault injection: stalling at <point>" and
// sleep until killed: a save held mid-write, for tests that kill a node at that moment).
#pragma once

#include <string_view>

namespace ckptio::detail {

void fault_point(std::string_view point, int rank);

// Whether this build has fault injection compiled in (tests that need it skip otherwise).
bool fault_injection_compiled() noexcept;

}  // namespace ckptio::detail
