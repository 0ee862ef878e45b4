// ckptio tool: what every subcommand provides to the driver in ckptio_main.cpp.
#pragma once

#include <mpi.h>

#include <functional>
#include <ostream>

namespace CLI {
class App;
}  // namespace CLI

namespace ckptio::tool {

// Where a subcommand runs and where it prints. Only rank 0 is given real streams for
// output; the other ranks print nothing so that the output of `mpiexec -n N ckptio ...`
// appears once.
struct ToolContext {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int world_size = 1;
  std::ostream& out;
  std::ostream& err;
};

// How the ranks take part in a subcommand.
enum class Participation {
  // Read-only subcommands (ls, inspect): rank 0 does the work, the others wait for its
  // exit code. Reading one container on N ranks would only multiply the I/O.
  RankZero,
  // Subcommands that call the collective API (export, convert): every rank runs them and
  // the ranks agree on one exit code.
  Collective,
};

// A registered subcommand. `run` is called after the command line was parsed into the
// options the subcommand bound at registration; it returns the exit code (0 on success)
// and reports failures by throwing (the driver maps exceptions to exit codes).
struct Command {
  CLI::App* subcommand = nullptr;  // the parsed subcommand that selects this command
  Participation participation = Participation::RankZero;
  std::function<int(const ToolContext&)> run;
};

}  // namespace ckptio::tool
