// inspect_safetensors: the headers of a safetensors export, for tools and users.
#include <algorithm>
#include <map>

#include "ckptio/error.hpp"
#include "ckptio/safetensors.hpp"
#include "formats/hf_layout.hpp"
#include "formats/safetensors_file.hpp"
#include "io/safetensors_paths.hpp"

namespace fs = std::filesystem;

namespace ckptio {

SafetensorsInfo inspect_safetensors(const fs::path& path) {
  SafetensorsInfo info;
  info.path = path;
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    files = detail::safetensors_files_of_folder(path, nullptr);
  } else if (detail::ends_with(path.filename().string(), ".json")) {
    files = detail::safetensors_files_of_index(path, nullptr);
    info.index = path;
  } else {
    if (!fs::exists(path, ec)) throw IoError(path.string() + ": no such file or directory");
    files = {path.string()};
  }
  if (fs::is_directory(path, ec)) {  // the index the folder was read through, if any
    std::vector<fs::path> indexes;
    for (const auto& e : fs::directory_iterator(path))
      if (detail::ends_with(e.path().filename().string(), ".safetensors.index.json")) indexes.push_back(e.path());
    if (indexes.size() == 1) info.index = indexes[0];
    for (const auto& i : indexes)
      if (i.filename() == "model.safetensors.index.json") info.index = i;
  }
  std::map<std::string, std::string> seen;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const detail::SafetensorsFile file(files[i]);
    info.files.push_back(files[i]);
    info.file_bytes += file.file_size();
    if (i == 0) info.metadata = file.header().metadata;
    for (const auto& t : file.header().tensors) {
      if (auto [it, fresh] = seen.emplace(t.name, files[i]); !fresh)
        throw FormatError(files[i] + ": tensor '" + t.name + "' is also stored in " + it->second);
      info.tensors.push_back(TensorInfo{.format = TensorFormat::Safetensors,
                                        .name = t.name,
                                        .dtype = t.dtype,
                                        .shape = t.shape,
                                        .bytes = t.bytes(),
                                        .file = fs::path(files[i]).filename().string()});
      info.tensor_bytes += t.bytes();
    }
  }
  std::sort(info.tensors.begin(), info.tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return info;
}

}  // namespace ckptio
