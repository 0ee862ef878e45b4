// `ckptio verify PATH`: format version, completeness and every checksum of a container, or
// of every committed checkpoint in a root. Collective: under mpiexec the ranks share the
// pieces; it also works as a single process.
#include <mpi.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/verify.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"

namespace ckptio::tool {
namespace {

struct VerifyOptions {
  std::string path;
};

// The files to verify, decided on rank 0 and sent to all: a file itself, or every committed
// checkpoint of a root. Problems with the root itself (a `latest` naming nothing) go to
// `problems`.
std::vector<std::string> files_to_verify(const VerifyOptions& options, const ToolContext& context,
                                         std::vector<std::string>& problems) {
  std::string listed;
  std::string error;
  int error_kind = 0;
  if (context.rank == 0) {
    try {
      require_existing(options.path);
      if (!std::filesystem::is_directory(options.path)) {
        listed = options.path + '\n';
      } else {
        const auto entries = ckptio::list_checkpoints(options.path);
        bool latest_listed = false;
        for (const auto& e : entries) {
          listed += e.path.string() + '\n';
          latest_listed = latest_listed || e.is_latest;
        }
        std::optional<std::filesystem::path> latest;
        try {
          latest = ckptio::read_latest(options.path);
        } catch (const ckptio::Error& e) {
          problems.push_back(e.what());
        }
        if (latest && !latest_listed)
          problems.push_back(options.path + "/latest names " + latest->filename().string() +
                             ", which is not a committed checkpoint in the root");
        if (entries.empty()) problems.push_back(options.path + ": no committed checkpoint in the root");
      }
    } catch (const ckptio::Error& e) {
      error = e.what();
      error_kind = static_cast<int>(e.kind());
    }
  }
  MPI_Bcast(&error_kind, 1, MPI_INT, 0, context.comm);
  if (error_kind != 0) {
    if (context.rank == 0) ckptio::throw_error(static_cast<ckptio::ErrorKind>(error_kind), error);
    throw ckptio::Error("verify failed on rank 0", static_cast<ckptio::ErrorKind>(error_kind));
  }
  int size = static_cast<int>(listed.size());
  MPI_Bcast(&size, 1, MPI_INT, 0, context.comm);
  listed.resize(static_cast<std::size_t>(size));
  MPI_Bcast(listed.data(), size, MPI_CHAR, 0, context.comm);
  std::vector<std::string> files;
  for (std::size_t pos = 0; pos < listed.size();) {
    const auto end = listed.find('\n', pos);
    files.push_back(listed.substr(pos, end - pos));
    pos = end + 1;
  }
  return files;
}

int run_verify(const VerifyOptions& options, const ToolContext& context) {
  std::vector<std::string> root_problems;
  const auto files = files_to_verify(options, context, root_problems);
  bool good = root_problems.empty();
  for (const auto& file : files) {
    const auto report = ckptio::verify_container(context.comm, file);
    if (report.ok()) {
      context.out << "OK      " << file << " (format version " << report.format_version << ", " << report.tensors
                  << " tensors, " << report.pieces << " pieces, " << report.bytes_verified << " bytes verified)\n";
      continue;
    }
    good = false;
    context.out << "FAILED  " << file << " (" << report.problems.size() << " problem"
                << (report.problems.size() == 1 ? "" : "s") << ")\n";
    for (const auto& p : report.problems) context.out << "  - " << p << '\n';
  }
  for (const auto& p : root_problems) context.out << "FAILED  " << p << '\n';
  if (!good) {
    context.out.flush();
    return kExitBadInput;
  }
  return kExitSuccess;
}

}  // namespace

Command add_verify_command(CLI::App& app) {
  auto options = std::make_shared<VerifyOptions>();
  CLI::App* verify = app.add_subcommand(
      "verify", "Check format version, completeness and every checksum of a checkpoint (or of all in a root)");
  verify->add_option("PATH", options->path, "Container file, or checkpoint root (every committed checkpoint)")
      ->required();
  return {verify, Participation::Collective,
          [options](const ToolContext& context) { return run_verify(*options, context); }};
}

}  // namespace ckptio::tool
