// `ckptio inspect PATH [--json]`: what a container holds, without reading tensor data.
#include <filesystem>
#include <memory>
#include <string>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/safetensors.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"
#include "inspect_json.hpp"
#include "inspect_safetensors.hpp"
#include "inspect_text.hpp"
#include "torch_report.hpp"

namespace ckptio::tool {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
};

// A file that is neither HDF5 nor a .pt is read as safetensors; when it is not named like
// one and fails, say what it is not rather than quoting a header length from a text file.
ckptio::SafetensorsInfo inspect_as_safetensors(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string name = p.filename().string();
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::error_code error;
  if (std::filesystem::is_directory(p, error) || ends_with(".safetensors") || ends_with(".json"))
    return ckptio::inspect_safetensors(path);
  try {
    return ckptio::inspect_safetensors(path);
  } catch (const ckptio::FormatError& e) {
    throw ckptio::FormatError(path +
                              " is not a ckptio container (no HDF5 signature), a PyTorch .pt file or a safetensors "
                              "file (read as safetensors: " +
                              e.what() + ")");
  }
}

int run_inspect(const InspectOptions& options, const ToolContext& context) {
  require_existing(options.path);
  // A .pt file first: its zip bytes could pass for a safetensors header length.
  if (is_torch_input(options.path)) {
    const ckptio::TorchFile file(options.path);
    if (options.json) {
      context.out << torch_document(options.path, file).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << '\n';
    } else {
      print_torch_text(options.path, file, context.out);
    }
    return kExitSuccess;
  }
  if (is_safetensors_input(options.path)) {
    const auto info = inspect_as_safetensors(options.path);
    if (options.json)
      context.out << inspect_safetensors_document(info).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << '\n';
    else
      print_inspect_safetensors_text(info, context.out);
    return kExitSuccess;
  }
  const auto info = ckptio::inspect_container(resolve_container(options.path));
  if (options.json) {
    context.out << inspect_document(info).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    print_inspect_text(info, context.out);
  }
  return kExitSuccess;
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* inspect = app.add_subcommand(
      "inspect", "Show the tensors, running state and provenance of a checkpoint, a safetensors export or a .pt file");
  inspect
      ->add_option("PATH", options->path,
                   "Container file, checkpoint root (its latest checkpoint), a safetensors file, index or folder, or a "
                   "PyTorch .pt/.pth file")
      ->required();
  inspect->add_flag("--json", options->json, "Print one JSON document (schema ckptio.inspect/1)");
  return {inspect, Participation::RankZero,
          [options](const ToolContext& context) { return run_inspect(*options, context); }};
}

}  // namespace ckptio::tool
