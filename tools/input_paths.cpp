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
  // Through the library, which applies the root's rules to what `latest` names.
  return ckptio::resolve_checkpoint_path(path);
}

}  // namespace ckptio::tool
