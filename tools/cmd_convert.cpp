// `ckptio convert INPUT.pt --out OUT.h5|OUT.safetensors`: imports a PyTorch state dict into
// a ckptio container through CheckpointIO (and, for .safetensors, exports it from there). Collective: every rank reads
// an equal flat range of every tensor from the .pt file and the container is written by all of them.
//
// Top-level "model", "optimizer" and "ema" keys become the container's groups when any of
// them holds tensors; otherwise every tensor goes into "model". Values that are not tensors
// go into the running state's extras by dotted key; top-level integer "epoch", "step" and
// "global_step" set the running state's fields instead.
#include <mpi.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/error.hpp"
#include "ckptio/safetensors.hpp"
#include "ckptio/torch_file.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"

namespace ckptio::tool {
namespace {

namespace fs = std::filesystem;

struct ConvertOptions {
  std::string input;
  std::string out;
};

// "model.blocks.0.w" -> ("model", "blocks.0.w") when the file uses groups.
std::pair<std::string, std::string> split_group(const std::string& name, bool grouped) {
  if (grouped) {
    for (const char* group : ckptio::kGroupNames) {
      const std::string prefix = std::string(group) + ".";
      if (name.compare(0, prefix.size(), prefix) == 0) return {group, name.substr(prefix.size())};
    }
  }
  return {"model", name};
}

// Element `rank`'s share of n elements split as evenly as possible over `ranks`.
std::int64_t share_begin(std::int64_t n, int rank, int ranks) {
  return (n / ranks) * rank + std::min<std::int64_t>(rank, n % ranks);
}

// What this rank passes to CheckpointIO::save: its share of every tensor, and the values.
struct Prepared {
  std::vector<std::vector<std::uint8_t>> buffers;  // the shards' memory
  ckptio::Snapshot snapshot;
  std::size_t tensors = 0;
  std::size_t values = 0;
};

Prepared prepare(const ConvertOptions& options, const ToolContext& context) {
  const fs::path input = options.input;
  const fs::path out = options.out;
  require_existing(input);
  if (out.empty()) throw ckptio::UsageError("convert: --out is empty; name the .h5 or .safetensors file to write");
  if (out.extension() != ".h5" && out.extension() != ".safetensors") {
    throw ckptio::UsageError("convert: --out " + out.string() +
                             ": write a .h5 ckptio container or a .safetensors file");
  }
  std::error_code error;
  if (fs::exists(fs::symlink_status(out, error)))
    throw ckptio::UsageError("convert: --out " + out.string() + " already exists");
  // As export does: the output folder must exist (nothing is created above the output).
  const fs::path folder = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(folder, error))
    throw ckptio::IoError("convert: output folder " + folder.string() + " does not exist");
  const ckptio::TorchFile file(input);

  bool grouped = false;
  for (const auto& t : file.tensors()) {
    for (const char* group : ckptio::kGroupNames) {
      grouped = grouped || t.name.rfind(std::string(group) + ".", 0) == 0;
    }
  }

  Prepared prepared;
  prepared.tensors = file.tensors().size();
  prepared.values = file.values().size();
  std::map<std::string, ckptio::StateDict> groups;
  prepared.buffers.resize(file.tensors().size());
  for (std::size_t i = 0; i < file.tensors().size(); ++i) {
    const auto& t = file.tensors()[i];
    const std::int64_t n = t.elements();
    const std::int64_t begin = share_begin(n, context.rank, context.world_size);
    const std::int64_t end = share_begin(n, context.rank + 1, context.world_size);
    auto& buffer = prepared.buffers[i];
    buffer.resize(static_cast<std::size_t>(end - begin) * ckptio::dtype_size(t.dtype));
    file.read_elements(i, begin, end, buffer.data());
    auto [group, name] = split_group(t.name, grouped);
    try {
      groups[group].add(name, ckptio::TensorShard::flat(buffer.data(), t.dtype, t.shape, begin, end));
    } catch (const ckptio::UsageError& e) {
      // The names come from the file: a name ckptio cannot store is a problem of the input.
      throw ckptio::FormatError(input.string() + ": cannot be converted: " + e.what());
    }
  }

  ckptio::Snapshot& snapshot = prepared.snapshot;
  if (groups.count("model")) snapshot.model = std::move(groups["model"]);
  if (groups.count("optimizer")) snapshot.optimizer = std::move(groups["optimizer"]);
  if (groups.count("ema")) snapshot.ema = std::move(groups["ema"]);
  for (const auto& [key, value] : file.values()) {
    if (value.is_number_integer() && (key == "epoch" || key == "step" || key == "global_step")) {
      (key == "epoch"  ? snapshot.running.epoch
       : key == "step" ? snapshot.running.step
                       : snapshot.running.global_step) = value.get<std::int64_t>();
    } else {
      snapshot.running.extras[key] = value;
    }
  }
  return prepared;
}

int run_convert(const ConvertOptions& options, const ToolContext& context) {
  const fs::path input = options.input;
  const fs::path out = options.out;
  // Every rank prepares alone; no rank enters the collective save unless all are ready.
  std::optional<Prepared> prepared;
  std::exception_ptr failure;
  try {
    prepared = prepare(options, context);
  } catch (...) {
    failure = std::current_exception();
  }
  int ready = failure ? 0 : 1;
  int all_ready = 0;
  MPI_Allreduce(&ready, &all_ready, 1, MPI_INT, MPI_MIN, context.comm);
  if (failure) std::rethrow_exception(failure);
  if (!all_ready) return kExitSuccess;  // the driver reports the failing rank's error on every rank
  const ckptio::Snapshot& snapshot = prepared->snapshot;

  // CheckpointIO writes into a root folder; a private one beside the output is renamed away.
  const fs::path staging = fs::path(out.string() + ".ckptio-convert");
  int exists = context.rank == 0 && fs::exists(staging) ? 1 : 0;
  MPI_Bcast(&exists, 1, MPI_INT, 0, context.comm);
  if (exists) throw ckptio::UsageError("convert: " + staging.string() + " is in the way; remove it");
  fs::path saved;
  try {
    ckptio::CheckpointIO io(context.comm, staging, {.keep_last = 0, .lock_root = false});
    saved = io.save(snapshot);
  } catch (const ckptio::Error&) {  // raised on every rank alike: leave nothing behind
    MPI_Barrier(context.comm);
    std::error_code ignored;
    if (context.rank == 0) fs::remove_all(staging, ignored);
    throw;
  }
  MPI_Barrier(context.comm);
  if (out.extension() == ".safetensors") {
    // Through the container just written: the export is parallel and byte-exact already.
    ckptio::ExportOptions export_options;
    export_options.metadata = {{"ckptio.converted_from", input.filename().string()}};
    ckptio::ExportResult exported;
    std::exception_ptr export_failure;
    try {
      exported = ckptio::export_safetensors(context.comm, saved, "", out, export_options);
    } catch (const ckptio::Error&) {  // raised on every rank alike
      export_failure = std::current_exception();
    }
    MPI_Barrier(context.comm);
    std::error_code ignored;
    if (context.rank == 0) fs::remove_all(staging, ignored);
    if (export_failure) std::rethrow_exception(export_failure);
    context.out << "converted " << input.string() << " (" << exported.tensors << " tensors) into " << out.string()
                << '\n';
    return kExitSuccess;
  }
  int failed = 0;
  std::string message;
  if (context.rank == 0) {
    std::error_code error;
    fs::rename(saved, out, error);
    if (error) {
      failed = 1;
      message = "convert: cannot move " + saved.string() + " to " + out.string() + ": " + error.message();
    }
    fs::remove_all(staging, error);
  }
  MPI_Bcast(&failed, 1, MPI_INT, 0, context.comm);
  if (failed) throw ckptio::IoError(context.rank == 0 ? message : "convert: rank 0 could not move the container");
  context.out << "converted " << input.string() << " (" << prepared->tensors << " tensors, " << prepared->values
              << " values) into " << out.string() << '\n';
  return kExitSuccess;
}

}  // namespace

Command add_convert_command(CLI::App& app) {
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* convert = app.add_subcommand(
      "convert", "Import a PyTorch .pt/.pth state dict into a ckptio container, or convert it to safetensors");
  convert->add_option("INPUT", options->input, "PyTorch .pt/.pth file written by torch.save")->required();
  convert
      ->add_option("--out", options->out,
                   "The container (.h5) or safetensors file (.safetensors, the ema group when the file has one, "
                   "else model) to write; must not exist")
      ->required();
  return {convert, Participation::Collective,
          [options](const ToolContext& context) { return run_convert(*options, context); }};
}

}  // namespace ckptio::tool
