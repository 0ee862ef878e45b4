#include "io/save_export.hpp"

#include <set>

#include "ckptio/safetensors.hpp"
#include "io/fs_util.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {

std::string save_export_name(std::int64_t epoch, std::int64_t global_step, const std::string& group) {
  return "epoch" + std::to_string(epoch) + "-global_step" + std::to_string(global_step) + "." + group + ".safetensors";
}

void export_at_save(const Comm& comm, const fs::path& partial, const std::string& group, const fs::path& out,
                    const std::optional<DType>& dtype) {
  ExportOptions options;
  options.dtype = dtype;
  export_safetensors(comm.get(), partial, group, out, options);
}

std::vector<fs::path> exports_to_remove(const fs::path& root, const std::vector<fs::path>& pruned) {
  std::set<std::string> pruned_stems;
  for (const auto& p : pruned) pruned_stems.insert(p.stem().string());  // "epoch0-global_step10"
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".safetensors";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const auto dot = name.find('.');
    const std::string stem = name.substr(0, dot);
    if (!parse_checkpoint_name(stem + ".h5")) continue;
    if (pruned_stems.count(stem) || !fs::exists(root / (stem + ".h5"))) out.push_back(entry.path());
  }
  return out;
}

}  // namespace ckptio::detail
