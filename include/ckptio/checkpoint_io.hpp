// ckptio: collective checkpoint save and load into one parallel HDF5 container.
#pragma once

#include <mpi.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ckptio/snapshot.hpp"

namespace ckptio {

struct CheckpointOptions {
  // Number of committed checkpoints to keep in the root; 0 keeps all. The checkpoint that
  // `latest` names is never pruned.
  int keep_last = 0;
  // Take the root's lock file so that a second job writing into the same root is refused.
  bool lock_root = true;
};

struct LoadOptions {
  // Missing or unexpected keys are an error (listed in the message). With strict = false
  // they are returned in LoadResult::keys and the matching tensors are loaded.
  bool strict = true;
  // Verify the XXH3-64 checksums of every stored piece (chunk) read; a mismatch is an
  // IntegrityError naming the file, tensor and piece. The running state and per-rank blobs
  // are always verified.
  bool verify = true;
};

// Saves and loads checkpoints under one root folder:
//   <root>/epoch{E}-global_step{G}.h5   one container per checkpoint
//   <root>/latest                       the newest committed container's file name
//   <root>/.ckptio.lock                 held while a CheckpointIO is alive
// Every member function except latest_name()/root() is collective over the communicator
// given to the constructor: every rank calls it, in the same order. A failure on any rank
// raises the same ckptio::Error on every rank.
class CheckpointIO {
 public:
  // Collective over comm. Creates the root if needed and takes its lock (LockedError when
  // another live process holds it). The communicator is duplicated; comm may be freed after.
  CheckpointIO(MPI_Comm comm, std::filesystem::path root, CheckpointOptions options = {});
  ~CheckpointIO();
  CheckpointIO(const CheckpointIO&) = delete;
  CheckpointIO& operator=(const CheckpointIO&) = delete;
  CheckpointIO(CheckpointIO&&) noexcept;
  CheckpointIO& operator=(CheckpointIO&&) noexcept;

  // Collective. Writes <root>/epoch{E}-global_step{G}.h5 atomically and makes it `latest`;
  // returns its path. An existing checkpoint of the same name is replaced.
  std::filesystem::path save(const Snapshot& snapshot);

  // Collective. Loads `path` into the shards of `targets` (any world size, any split) and
  // returns the running state. `path` is a container file, a checkpoint file name inside
  // the root, or a folder (resolved through its `latest`). Never falls back to another
  // checkpoint.
  LoadResult load(const std::filesystem::path& path, const Snapshot& targets, const LoadOptions& options = {});

  // Collective. Loads the root's `latest`; when it cannot be opened or fails verification,
  // falls back to the next older committed checkpoint, with a warning. nullopt when the root has no checkpoint.
  std::optional<LoadResult> load_latest(const Snapshot& targets, const LoadOptions& options = {});

  // Collective. Path of the checkpoint `latest` names, nullopt when there is none.
  std::optional<std::filesystem::path> latest();

  const std::filesystem::path& root() const;
  int rank() const;
  int world_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// File name of the checkpoint for (epoch, global_step): "epoch{E}-global_step{G}.h5".
std::string checkpoint_file_name(std::int64_t epoch, std::int64_t global_step);

}  // namespace ckptio
