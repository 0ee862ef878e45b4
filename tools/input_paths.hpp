// ckptio tool: turning the paths users type into files to read, with the error (and so the
// exit code) that a missing or empty path deserves.
#pragma once

#include <filesystem>

namespace ckptio::tool {

// Throws ckptio::IoError naming `path` when nothing exists there.
void require_existing(const std::filesystem::path& path);

// A container file as given, or a checkpoint root resolved through its `latest`.
// Throws ckptio::IoError when the path does not exist or the root has no checkpoint, and
// ckptio::FormatError when `latest` is malformed.
std::filesystem::path resolve_container(const std::filesystem::path& path);

}  // namespace ckptio::tool
