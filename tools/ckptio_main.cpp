// The `ckptio` command line: parses the arguments, runs the chosen subcommand on the MPI
// ranks (it also works without mpiexec, as a single rank) and exits with the same code on
// every rank.
#include <mpi.h>

#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ckptio/version.hpp"
#include "command.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "run_on_ranks.hpp"

namespace {

using ckptio::tool::Command;
using ckptio::tool::ToolContext;

// CLI11 reports a mistyped subcommand as a missing one; name what the user typed instead.
std::string usage_error_message(const CLI::App& app, int argc, char** argv, const CLI::ParseError& error) {
  if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
    std::string known;
    for (const CLI::App* subcommand : app.get_subcommands([](const CLI::App*) { return true; })) {
      known += (known.empty() ? "" : ", ") + subcommand->get_name();
    }
    return "unknown subcommand '" + std::string(argv[1]) + "' (expected one of: " + known + ")";
  }
  return error.what();
}

// "ckptio --help", or "ckptio inspect --help" once a subcommand was recognised.
std::string help_command(const CLI::App& app) {
  const auto chosen = app.get_subcommands();
  return chosen.empty() ? "ckptio --help" : "ckptio " + chosen.front()->get_name() + " --help";
}

// Every rank parses the same argv, so every rank reaches the same verdict without talking
// to the others; only rank 0 prints it.
int run_tool(int argc, char** argv, const ToolContext& context) {
  CLI::App app{"Inspect and manage ckptio checkpoints", "ckptio"};
  app.set_version_flag("--version", std::string(ckptio::kVersion));
  app.require_subcommand(1);

  const std::vector<Command> commands = {
      ckptio::tool::add_ls_command(app),     ckptio::tool::add_inspect_command(app),
      ckptio::tool::add_export_command(app), ckptio::tool::add_convert_command(app),
      ckptio::tool::add_verify_command(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {  // --help, --version
      app.exit(error, context.out, context.err);
      return ckptio::tool::kExitSuccess;
    }
    context.err << "ckptio: error: " << usage_error_message(app, argc, argv, error) << "\nRun '" << help_command(app)
                << "' for usage.\n";
    return ckptio::tool::kExitUsage;
  }

  for (const auto& command : commands) {
    if (command.subcommand->parsed()) return ckptio::tool::run_on_ranks(command, context);
  }
  return ckptio::tool::kExitUsage;  // unreachable: require_subcommand(1) guarantees one
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);

  // Ranks other than 0 print nothing: a stream without a buffer discards what it is given.
  std::ostream discard(nullptr);
  const ToolContext context{MPI_COMM_WORLD, rank, world_size, rank == 0 ? std::cout : discard,
                            rank == 0 ? std::cerr : discard};
  int exit_code = ckptio::tool::kExitSuccess;
  try {
    exit_code = run_tool(argc, argv, context);
  } catch (const std::exception& error) {  // building the command line itself failed
    const auto failure = ckptio::tool::describe_failure(error);
    context.err << "ckptio: error: " << failure.message << '\n';
    exit_code = failure.exit_code;
  }
  std::cout.flush();
  MPI_Finalize();
  return exit_code;
}
