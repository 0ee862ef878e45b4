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

// One copy of one node's part of a node-local checkpoint (CheckpointOptions::local_dir,
// docs/MULTILEVEL.md), as found under a local folder.
struct LocalCheckpointEntry {
  std::filesystem::path path;  // the container
  std::string name;            // its file name, epoch{E}-global_step{G}.h5
  std::int64_t epoch = 0;
  std::int64_t global_step = 0;
  // The folder it was found in, relative to the local folder: "" for the local folder itself,
  // else the subfolder of one node (the local folder of several nodes on one file system).
  std::string holder;
  int node = 0;               // the node whose ranks' pieces it holds
  bool partner_copy = false;  // a partner copy held for that node (else the node's own)
  bool committed = false;     // its commit record exists, is readable and names it
  std::string job;            // the job that saved it (from the record; empty if uncommitted)
  int nodes = 0;              // nodes of that job's layout (from the record; 0 if uncommitted)
  std::uint64_t file_bytes = 0;
  std::string modified;  // ISO 8601, UTC, of the file
};

// Lists the node-local checkpoints under a local folder (the local_dir of a job, its `%j`
// substituted), in the folder itself and in any subfolder of it that holds a node's local
// level: by global_step, then node, own copy before partner copies, then holder. `.partial`
// copies are never listed; containers without a valid commit record are, as not committed.
// Throws IoError when the folder cannot be read.
std::vector<LocalCheckpointEntry> list_local_checkpoints(const std::filesystem::path& local_dir);

// The checkpoint a root's `latest` names, nullopt when the root has none. Throws FormatError
// when `latest` is malformed or names a file outside the root.
std::optional<std::filesystem::path> read_latest(const std::filesystem::path& root);

// Resolves a user's path: a folder -> its `latest`; otherwise the path itself.
std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path);

}  // namespace ckptio
