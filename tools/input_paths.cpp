#include "input_paths.hpp"

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"

namespace ckptio::tool {

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
  if (!std::filesystem::is_directory(path)) return path;
  auto latest = ckptio::read_latest(path);
  if (!latest) throw ckptio::IoError(path.string() + ": no committed checkpoint (the root has no 'latest')");
  return *latest;
}

}  // namespace ckptio::tool
