#include "run_on_ranks.hpp"

#include <exception>
#include <string>

#include "exit_codes.hpp"

namespace ckptio::tool {
namespace {

// Runs the command on this rank. Nothing may escape: an exception that left the tool would
// abort this rank while the others wait in a collective.
Failure run_here(const Command& command, const ToolContext& context) {
  try {
    return {command.run(context), {}};
  } catch (const std::exception& error) {
    return describe_failure(error);
  } catch (...) {
    return {kExitBadInput, "unknown error"};
  }
}

void print_failure(const Failure& failure, const ToolContext& context) {
  if (!failure.message.empty()) context.err << "ckptio: error: " << failure.message << '\n';
}

int run_on_rank_zero(const Command& command, const ToolContext& context) {
  int exit_code = kExitSuccess;
  if (context.rank == 0) {
    const Failure failure = run_here(command, context);
    print_failure(failure, context);
    exit_code = failure.exit_code;
  }
  MPI_Bcast(&exit_code, 1, MPI_INT, 0, context.comm);
  return exit_code;
}

// Every rank ran the command; the lowest rank that failed decides the code and the message,
// and rank 0 prints it, so the user sees one line however many ranks failed.
int run_collectively(const Command& command, const ToolContext& context) {
  Failure failure = run_here(command, context);
  const int my_key = failure.exit_code != kExitSuccess ? context.rank : context.world_size;
  int first_failed_rank = context.world_size;
  MPI_Allreduce(&my_key, &first_failed_rank, 1, MPI_INT, MPI_MIN, context.comm);
  if (first_failed_rank == context.world_size) return kExitSuccess;

  MPI_Bcast(&failure.exit_code, 1, MPI_INT, first_failed_rank, context.comm);
  int message_size = static_cast<int>(failure.message.size());
  MPI_Bcast(&message_size, 1, MPI_INT, first_failed_rank, context.comm);
  failure.message.resize(static_cast<std::size_t>(message_size));
  MPI_Bcast(failure.message.data(), message_size, MPI_CHAR, first_failed_rank, context.comm);
  if (context.rank == 0) print_failure(failure, context);
  return failure.exit_code;
}

}  // namespace

int run_on_ranks(const Command& command, const ToolContext& context) {
  switch (command.participation) {
    case Participation::RankZero:
      return run_on_rank_zero(command, context);
    case Participation::Collective:
      return run_collectively(command, context);
  }
  return kExitBadInput;
}

}  // namespace ckptio::tool
