// `ckptio ls ROOT [--local-dir DIR]`: the committed checkpoints of a root, oldest first, latest
// marked; with --local-dir, also the node-local level: every copy and, per step, whether
// every node's pieces have a committed copy.
#include <filesystem>
#include <map>
#include <memory>
#include <set>
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
  std::string local_dir;
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

// One line per step: whether the copies here cover every node's pieces with a committed copy
// (what a restart on these nodes needs), as far as this view of the local level shows.
std::string step_summary(std::int64_t step, const std::vector<const ckptio::LocalCheckpointEntry*>& copies) {
  int nodes = 0;
  std::set<int> covered;
  std::set<std::string> jobs;
  for (const auto* c : copies) {
    if (!c->committed) continue;
    nodes = std::max(nodes, c->nodes);
    covered.insert(c->node);
    jobs.insert(c->job);
  }
  std::string line = "global_step " + std::to_string(step) + ": ";
  if (covered.empty()) return line + "not committed (no copy has its record)";
  std::string missing;
  for (int n = 0; n < nodes; ++n)
    if (!covered.count(n)) missing += (missing.empty() ? "" : ", ") + std::to_string(n);
  std::string job_text;
  for (const auto& j : jobs) job_text += (job_text.empty() ? "" : ", ") + j;
  if (!missing.empty())
    return line + "incomplete: no committed copy of the pieces of node(s) " + missing + " (job " + job_text + ")";
  return line + "complete: a committed copy of each of " + std::to_string(nodes) + " node(s) (job " + job_text + ")";
}

void print_local_level(const std::filesystem::path& local_dir, std::ostream& out) {
  const auto entries = ckptio::list_local_checkpoints(local_dir);
  if (entries.empty()) {
    out << "no local checkpoints in " << local_dir.string() << '\n';
    return;
  }
  TextTable table{{false, true, true, false, false, false, true, false}, {}};
  table.rows.push_back({"NAME", "GLOBAL_STEP", "NODE", "COPY", "HELD_IN", "STATE", "SIZE", "MODIFIED"});
  std::map<std::int64_t, std::vector<const ckptio::LocalCheckpointEntry*>> by_step;
  for (const auto& e : entries) {
    table.rows.push_back({e.name, std::to_string(e.global_step), std::to_string(e.node),
                          e.partner_copy ? "partner" : "own", e.holder.empty() ? "." : e.holder,
                          e.committed ? "committed" : "uncommitted", human_bytes(e.file_bytes), e.modified});
    by_step[e.global_step].push_back(&e);
  }
  out << "local level in " << local_dir.string() << '\n';
  table.print(out);
  out << '\n';
  for (const auto& [step, copies] : by_step) out << step_summary(step, copies) << '\n';
}

int run_ls(const LsOptions& options, const ToolContext& context) {
  const std::filesystem::path root = options.root;
  require_existing(root);
  if (!std::filesystem::is_directory(root)) throw ckptio::IoError(root.string() + ": not a directory");
  if (!options.local_dir.empty()) {
    require_existing(options.local_dir);
    if (!std::filesystem::is_directory(options.local_dir))
      throw ckptio::IoError(options.local_dir + ": not a directory");
  }
  const auto entries = ckptio::list_checkpoints(root);
  if (entries.empty()) {
    context.out << "no checkpoints in " << root.string() << '\n';
  } else {
    print_checkpoints(entries, context.out);
    context.out << '\n'
                << entries.size() << (entries.size() == 1 ? " checkpoint" : " checkpoints") << " in " << root.string()
                << "; * marks latest\n";
  }
  if (!options.local_dir.empty()) {
    context.out << '\n';
    print_local_level(options.local_dir, context.out);
  }
  return kExitSuccess;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto options = std::make_shared<LsOptions>();
  CLI::App* ls = app.add_subcommand("ls", "List the committed checkpoints of a checkpoint root");
  ls->add_option("ROOT", options->root, "Checkpoint root folder")->required();
  ls->add_option("--local-dir", options->local_dir,
                 "Also list the node-local level in this folder (a job's local_dir, %j substituted)");
  return {ls, Participation::RankZero, [options](const ToolContext& context) { return run_ls(*options, context); }};
}

}  // namespace ckptio::tool
