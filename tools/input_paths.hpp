// ckptio tool: turning the paths users type into files to read, with the error (and so the
// exit code) that a missing or empty path deserves.
#pragma once

#include <filesystem>

namespace ckptio::tool {

// Throws ckptio::IoError naming `path` when nothing exists there.
void require_existing(const std::filesystem::path& path);

// True when `path` is a regular file that starts like a zip archive (what torch.save
// writes) or has a .pt/.pth extension: `inspect` reads it as a PyTorch file.
bool is_torch_input(const std::filesystem::path& path);

// True when `path` is, by its name or content, a safetensors file, an index file, or a
// folder that holds one and is not a checkpoint root (no `latest`): `inspect` reads it as
// a safetensors export. A regular file that is not HDF5 counts, so that a damaged header
// gets the safetensors reader's error.
bool is_safetensors_input(const std::filesystem::path& path);

// A container file as given, or a checkpoint root resolved through its `latest`.
// Throws ckptio::IoError when the path does not exist or the root has no checkpoint, and
// ckptio::FormatError when `latest` is malformed.
std::filesystem::path resolve_container(const std::filesystem::path& path);

}  // namespace ckptio::tool
