// ckptio: read-only views of containers and checkpoint roots, for tools and users.
// These functions are not collective: call them on one rank (or without MPI at all).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"
#include "ckptio/snapshot.hpp"
#include "ckptio/tensor_info.hpp"

namespace ckptio {

struct ContainerInfo {
  std::filesystem::path path;
  int format_version = 0;
  std::string library_version;
  std::string created;  // ISO 8601, UTC
  std::string host;
  int world_size = 0;
  std::uint64_t file_bytes = 0;
  RunningState running;
  std::vector<std::uint64_t> rank_blob_sizes;  // one per saving rank
  std::vector<TensorInfo> tensors;             // format Container; in group order, then file order
};

// Reads a container's header and index (no tensor data). `path` may be a container file
// or a checkpoint root (resolved through `latest`). Throws FormatError / IoError.
ContainerInfo inspect_container(const std::filesystem::path& path);

struct CheckpointEntry {
  std::filesystem::path path;
  std::string name;  // file name
  std::int64_t epoch = 0;
  std::int64_t global_step = 0;
  std::uint64_t file_bytes = 0;
  std::string modified;  // ISO 8601, UTC, of the file
  bool is_latest = false;
};

// Lists the committed checkpoints in a root, oldest first (by global_step, then epoch).
// `.partial` files are never listed. Throws IoError when the root cannot be read.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& root);

// The checkpoint a root's `latest` names, nullopt when the root has none. Throws FormatError
// when `latest` is malformed or names a file outside the root.
std::optional<std::filesystem::path> read_latest(const std::filesystem::path& root);

// Resolves a user's path: a folder -> its `latest`; otherwise the path itself.
std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path);

}  // namespace ckptio
