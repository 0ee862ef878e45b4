#include "io/safetensors_paths.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
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
}  // namespace

bool is_hdf5_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in.gcount() == 8 && std::memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The shard files an index names, in its folder. `confine`: folder their symlinks must stay in.
std::vector<std::string> safetensors_files_of_index(const fs::path& index_path, const fs::path* confine) {
  // In the cache the index itself is a symlink into blobs/: resolve it inside the repo.
  // Elsewhere symlinks are followed (a snapshot folder given by its path, say).
  std::error_code ec;
  const fs::path real = confine ? resolve_inside(index_path, *confine) : fs::canonical(index_path, ec);
  if (ec) throw IoError("cannot read " + index_path.string() + ": " + ec.message());
  const auto text = read_small_file(real, kMaxIndexFileBytes);
  if (!text) throw IoError("cannot read " + index_path.string());
  const auto index = parse_hf_index(index_path.string(), *text);
  std::vector<std::string> files;
  std::map<std::string, std::string> stored_in;  // tensor -> file name, from the headers
  for (const auto& name : index.files) {
    const fs::path p = index_path.parent_path() / name;
    files.push_back(confine ? resolve_inside(p, *confine).string() : p.string());
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
  if (auto single = pick(singles, "model.safetensors"))
    return {confine ? resolve_inside(*single, *confine).string() : single->string()};
  if (!singles.empty())
    throw UsageError(folder.string() + " holds several .safetensors files and no index; name the one to load");
  throw IoError("no .safetensors file or index in " + folder.string());
}

}  // namespace ckptio::detail
