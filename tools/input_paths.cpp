#include "input_paths.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <string>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"

namespace ckptio::tool {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first bytes of `path` equal `signature`.
bool starts_with_bytes(const std::filesystem::path& path, const char* signature, std::size_t size) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  in.read(head, static_cast<std::streamsize>(size));
  return static_cast<std::size_t>(in.gcount()) == size && std::memcmp(head, signature, size) == 0;
}

bool is_hdf5_file(const std::filesystem::path& path) { return starts_with_bytes(path, "\x89HDF\r\n\x1a\n", 8); }

bool has_torch_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".pt" || ext == ".pth";
}

bool is_safetensors_name(const std::string& name) {
  return ends_with(name, ".safetensors") || ends_with(name, ".safetensors.index.json");
}

}  // namespace

bool is_torch_input(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return false;
  return has_torch_extension(path) || starts_with_bytes(path, "PK\x03\x04", 4);
}

bool is_safetensors_input(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    if (fs::exists(path / "latest", error)) return false;
    for (const auto& entry : fs::directory_iterator(path, error))
      if (is_safetensors_name(entry.path().filename().string())) return true;
    return false;
  }
  const std::string name = path.filename().string();
  if (is_safetensors_name(name)) return true;
  return fs::is_regular_file(path, error) && !is_hdf5_file(path) && !ends_with(name, ".h5");
}

void require_existing(const std::filesystem::path& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (status.type() == std::filesystem::file_type::not_found) {
    throw ckptio::IoError(path.string() + ": no such file or directory");
  }
  if (error) throw ckptio::IoError(path.string() + ": " + error.message());
}

std::filesystem::path resolve_container(const std::filesystem::path& path) {
  require_existing(path);
  // Through the library, which applies the root's rules to what `latest` names.
  return ckptio::resolve_checkpoint_path(path);
}

}  // namespace ckptio::tool
