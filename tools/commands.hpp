// ckptio tool: the subcommands. Each function adds its subcommand (with its options) to the
// application and returns what the driver runs when the user picks it.
#pragma once

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace ckptio::tool {

Command add_ls_command(CLI::App& app);       // cmd_ls.cpp
Command add_inspect_command(CLI::App& app);  // cmd_inspect.cpp
Command add_export_command(CLI::App& app);   // cmd_export.cpp
Command add_convert_command(CLI::App& app);  // cmd_convert.cpp
Command add_verify_command(CLI::App& app);   // cmd_verify.cpp

}  // namespace ckptio::tool
