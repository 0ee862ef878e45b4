#include "io/safetensors_paths.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "ckptio/error.hpp"
#include "formats/hf_layout.hpp"
#include "formats/safetensors_file.hpp"
#include "io/fs_util.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {

namespace {

constexpr std::size_t kMaxIndexFileBytes = 64u << 20;

// The folder that the files of an export in `folder` must stay in: the folder itself, or,
// for a snapshot folder of the Hugging Face cache (whose files are symlinks into the repo's
// blobs/), the repo folder.
fs::path default_confinement(const fs::path& folder) {
  std::error_code ec;
  const fs::path real = fs::canonical(folder.empty() ? fs::path(".") : folder, ec);
  if (ec) throw IoError("cannot resolve " + folder.string() + ": " + ec.message());
  const fs::path snapshots = real.parent_path();
  if (snapshots.filename() == "snapshots" && fs::is_directory(snapshots.parent_path() / "blobs", ec))
    return snapshots.parent_path();
  return real;
}

}  // namespace

bool is_hdf5_file(const fs::path& path) { return has_hdf5_signature(path); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The shard files an index names, in its folder. `confine`: folder their symlinks must stay
// in (default: the index's folder, see default_confinement).
std::vector<std::string> safetensors_files_of_index(const fs::path& index_path, const fs::path* confine) {
  // In the cache the index itself is a symlink into blobs/: resolve it inside the repo. An
  // index given by its path is the user's choice and followed; the shards it names must
  // stay in its folder all the same.
  std::error_code ec;
  const fs::path real = confine ? resolve_inside(index_path, *confine) : fs::canonical(index_path, ec);
  if (ec) throw IoError("cannot read " + index_path.string() + ": " + ec.message());
  const fs::path shard_root = confine ? *confine : default_confinement(index_path.parent_path());
  const auto text = read_small_file(real, kMaxIndexFileBytes, "index file");
  if (!text) throw IoError("cannot read " + index_path.string());
  const auto index = parse_hf_index(index_path.string(), *text);
  std::vector<std::string> files;
  std::map<std::string, std::string> stored_in;  // tensor -> file name, from the headers
  for (const auto& name : index.files) {
    const fs::path p = index_path.parent_path() / name;
    const fs::path inside = resolve_inside(p, shard_root);  // refuses a symlink out of the folder
    files.push_back(confine ? inside.string() : p.string());
    const SafetensorsFile file(files.back());
    for (const auto& t : file.header().tensors) {
      const auto it = index.weight_map.find(t.name);
      if (it == index.weight_map.end())
        throw FormatError(p.string() + " holds tensor '" + t.name + "', which the weight_map of " +
                          index_path.string() + " does not list");
      if (it->second != name)
        throw FormatError(p.string() + " holds tensor '" + t.name + "', which the weight_map of " +
                          index_path.string() + " puts in " + it->second);
      stored_in[t.name] = name;
    }
  }
  for (const auto& [tensor, name] : index.weight_map)
    if (!stored_in.count(tensor))
      throw FormatError(index_path.string() + ": weight_map puts tensor '" + tensor + "' in " + name +
                        ", which does not hold it");
  return files;
}

// A folder of a safetensors export: its index, else its single (or model.) safetensors file.
std::vector<std::string> safetensors_files_of_folder(const fs::path& folder, const fs::path* confine) {
  std::vector<fs::path> indexes, singles;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, ".safetensors.index.json"))
      indexes.push_back(e.path());
    else if (ends_with(name, ".safetensors"))
      singles.push_back(e.path());
  }
  std::sort(indexes.begin(), indexes.end());
  std::sort(singles.begin(), singles.end());
  auto pick = [&](const std::vector<fs::path>& found, const char* preferred) -> std::optional<fs::path> {
    if (found.size() == 1) return found[0];
    for (const auto& f : found)
      if (f.filename() == preferred) return f;
    return std::nullopt;
  };
  if (auto index = pick(indexes, "model.safetensors.index.json")) return safetensors_files_of_index(*index, confine);
  if (!indexes.empty()) throw UsageError(folder.string() + " holds several index files; name the one to load");
  if (auto single = pick(singles, "model.safetensors")) {
    const fs::path inside = resolve_inside(*single, confine ? *confine : default_confinement(folder));
    return {confine ? inside.string() : single->string()};
  }
  if (!singles.empty())
    throw UsageError(folder.string() + " holds several .safetensors files and no index; name the one to load");
  throw IoError("no .safetensors file or index in " + folder.string());
}

}  // namespace ckptio::detail
