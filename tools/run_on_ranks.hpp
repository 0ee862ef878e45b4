// ckptio tool: runs a subcommand on the ranks and makes every rank exit with one code.
#pragma once

#include "command.hpp"

namespace ckptio::tool {

// Runs `command` as its Participation says, turns any exception into an exit code and a
// `ckptio: error: <message>` line (printed once, by rank 0), and returns the exit code that
// every rank of context.comm agrees on. Collective over context.comm.
int run_on_ranks(const Command& command, const ToolContext& context);

}  // namespace ckptio::tool
