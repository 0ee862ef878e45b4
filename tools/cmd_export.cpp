// `ckptio export CKPT [--group G] --out FILE [--dtype D] [--max-shard-size SIZE]`: a group
// of a checkpoint to safetensors, written by every rank of the job.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>

#include "byte_size.hpp"
#include "ckptio/error.hpp"
#include "ckptio/safetensors.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"
#include "text_format.hpp"

namespace ckptio::tool {
namespace {

struct ExportArgs {
  std::string checkpoint;
  std::string group;
  std::string out;
  std::string dtype;
  std::string max_shard_size;
  bool max_shard_size_given = false;  // "--max-shard-size ''" is an error, not no limit
  bool quiet = false;
};

// A bar redrawn in place on a terminal; a plain line per 10 % otherwise.
class Progress {
 public:
  explicit Progress(std::ostream& err) : err_(err), tty_(::isatty(STDERR_FILENO) == 1) {}
  void update(std::uint64_t done, std::uint64_t total) {
    const int percent = total ? static_cast<int>(done * 100 / total) : 100;
    if (tty_) {
      const int width = 30;
      const int filled = percent * width / 100;
      err_ << "\rexport [" << std::string(static_cast<std::size_t>(filled), '#')
           << std::string(static_cast<std::size_t>(width - filled), ' ') << "] " << percent << "% " << human_bytes(done)
           << " / " << human_bytes(total) << (done >= total ? "\n" : "") << std::flush;
      return;
    }
    if (percent / 10 <= last_decile_) return;
    last_decile_ = percent / 10;
    err_ << "export: " << percent << "% (" << human_bytes(done) << " of " << human_bytes(total) << ")\n";
  }

 private:
  std::ostream& err_;
  bool tty_;
  int last_decile_ = -1;
};

int run_export(const ExportArgs& args, const ToolContext& context) {
  require_existing(args.checkpoint);
  ExportOptions options;
  if (!args.dtype.empty()) {
    std::string upper;
    for (char c : args.dtype) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const auto d = parse_dtype(upper);
    if (!d || !(d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16))
      throw UsageError("--dtype must be one of bf16, f16, f32, f64 (got '" + args.dtype + "')");
    options.dtype = d;
  }
  if (args.out.empty()) throw UsageError("export: --out is empty; name the .safetensors file to write");
  if (args.max_shard_size_given) options.max_shard_size = parse_byte_size(args.max_shard_size);
  auto progress = std::make_shared<Progress>(context.err);
  if (!args.quiet && context.rank == 0)
    options.progress = [progress](std::uint64_t done, std::uint64_t total) { progress->update(done, total); };
  const ExportResult result = export_safetensors(context.comm, args.checkpoint, args.group, args.out, options);
  context.out << "exported " << result.tensors << " tensors (" << human_bytes(result.tensor_bytes) << ") to "
              << result.files.size() << " file" << (result.files.size() == 1 ? "" : "s") << '\n';
  for (const auto& f : result.files) context.out << "  " << f.string() << '\n';
  if (result.index) context.out << "  " << result.index->string() << '\n';
  return kExitSuccess;
}

}  // namespace

Command add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd =
      app.add_subcommand("export", "Export a checkpoint group to safetensors (run under mpiexec to parallelise)");
  cmd->add_option("CKPT", args->checkpoint, "Container file, or checkpoint root (its latest checkpoint)")->required();
  cmd->add_option("--group", args->group, "model, optimizer or ema (default: ema when present, else model)")
      ->check(CLI::IsMember({"model", "optimizer", "ema"}));
  cmd->add_option("--out", args->out, "Output FILE.safetensors (shards and index go beside it)")->required();
  cmd->add_option("--dtype", args->dtype, "Convert floating-point tensors: bf16, f16, f32 or f64");
  cmd->add_option("--max-shard-size", args->max_shard_size, "Shard size limit, e.g. 5GB (10^9) or 5GiB (2^30)");
  cmd->add_flag("--quiet", args->quiet, "No progress output");
  CLI::Option* max_shard_size = cmd->get_option("--max-shard-size");
  return {cmd, Participation::Collective, [args, max_shard_size](const ToolContext& context) {
            args->max_shard_size_given = max_shard_size->count() > 0;
            return run_export(*args, context);
          }};
}

}  // namespace ckptio::tool
