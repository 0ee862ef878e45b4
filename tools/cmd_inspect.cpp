// `ckptio inspect PATH [--json]`: what a container holds, without reading tensor data.
#include <filesystem>
#include <memory>
#include <string>

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
    const auto info = ckptio::inspect_safetensors(options.path);
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
