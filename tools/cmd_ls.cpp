// `ckptio ls ROOT`: the committed checkpoints of a root, oldest first, latest marked.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"
#include "text_format.hpp"

namespace ckptio::tool {
namespace {

struct LsOptions {
  std::string root;
};

void print_checkpoints(const std::vector<ckptio::CheckpointEntry>& entries, std::ostream& out) {
  TextTable table{{false, false, true, true, true, false}, {}};
  table.rows.push_back({"", "NAME", "EPOCH", "GLOBAL_STEP", "SIZE", "MODIFIED"});
  for (const auto& entry : entries) {
    table.rows.push_back({entry.is_latest ? "*" : "", entry.name, std::to_string(entry.epoch),
                          std::to_string(entry.global_step), human_bytes(entry.file_bytes), entry.modified});
  }
  table.print(out);
}

int run_ls(const LsOptions& options, const ToolContext& context) {
  const std::filesystem::path root = options.root;
  require_existing(root);
  if (!std::filesystem::is_directory(root)) throw ckptio::IoError(root.string() + ": not a directory");
  const auto entries = ckptio::list_checkpoints(root);
  if (entries.empty()) {
    context.out << "no checkpoints in " << root.string() << '\n';
    return kExitSuccess;
  }
  print_checkpoints(entries, context.out);
  context.out << '\n'
              << entries.size() << (entries.size() == 1 ? " checkpoint" : " checkpoints") << " in " << root.string()
              << "; * marks latest\n";
  return kExitSuccess;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto options = std::make_shared<LsOptions>();
  CLI::App* ls = app.add_subcommand("ls", "List the committed checkpoints of a checkpoint root");
  ls->add_option("ROOT", options->root, "Checkpoint root folder")->required();
  return {ls, Participation::RankZero, [options](const ToolContext& context) { return run_ls(*options, context); }};
}

}  // namespace ckptio::tool
