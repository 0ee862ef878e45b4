#include "exit_codes.hpp"

#include <filesystem>
#include <new>

#include "ckptio/error.hpp"

namespace ckptio::tool {

int exit_code_for(ckptio::ErrorKind kind) noexcept {
  switch (kind) {
    case ckptio::ErrorKind::Usage:
      return kExitUsage;
    case ckptio::ErrorKind::Io:
    case ckptio::ErrorKind::Locked:
      return kExitIo;
    case ckptio::ErrorKind::Format:
    case ckptio::ErrorKind::Integrity:
    case ckptio::ErrorKind::Mismatch:
    case ckptio::ErrorKind::Generic:
      return kExitBadInput;
  }
  return kExitBadInput;
}

Failure describe_failure(const std::exception& error) {
  if (const auto* ckptio_error = dynamic_cast<const ckptio::Error*>(&error)) {
    return {exit_code_for(ckptio_error->kind()), ckptio_error->what()};
  }
  // The operating system refused a directory scan or a stat: that is I/O, whatever the
  // standard library calls it.
  if (dynamic_cast<const std::filesystem::filesystem_error*>(&error) != nullptr) {
    return {kExitIo, error.what()};
  }
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) {
    return {kExitBadInput, "out of memory (an allocation failed)"};
  }
  return {kExitBadInput, error.what()};
}

}  // namespace ckptio::tool
