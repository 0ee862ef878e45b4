// ckptio: load weights for inference or fine-tuning from a safetensors export, a sharded
// Hugging Face folder, a model in the local Hugging Face cache, or a ckptio container.
#pragma once

#include <mpi.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/state_dict.hpp"

namespace ckptio {

struct LoadCheckpointOptions {
  // Missing or unexpected keys throw MismatchError listing them; otherwise they are returned.
  bool strict = true;
  // For a ckptio container: the group to load (empty: "ema" when present, else "model").
  // For a PyTorch file: the top-level key whose tensors to load, named without it (empty:
  // "ema" or "model" when the file nests its tensors under one, else every tensor).
  std::string group;
  // For a Hugging Face repo id: the revision (a branch or tag in refs/, or a commit hash);
  // empty means "main".
  std::string revision;
  // Converts stored floating-point tensors (F64, F32, F16, BF16) to the dtype of the state
  // dict's tensor; without it a dtype difference is a MismatchError.
  bool convert_dtype = false;
};

struct LoadCheckpointResult {
  std::vector<std::string> missing;          // requested by some rank, not stored
  std::vector<std::string> unexpected;       // stored, requested by no rank
  std::vector<std::filesystem::path> files;  // the files read
};

// Collective over comm. Loads the tensors of `state_dict` (each rank its own shards: blocks
// or flat ranges, any split) from `path`, which is
//   - a .safetensors file,
//   - a folder or `*.safetensors.index.json` of a sharded export (Hugging Face layout),
//   - a ckptio container or checkpoint root (see options.group),
//   - a PyTorch .pt/.pth file written by torch.save, read weights-only (see options.group),
//   - or, when nothing of that name exists, a Hugging Face repo id ("org/name") resolved in
//     the local cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub);
//     nothing is ever downloaded.
// Each rank reads only the bytes of its own pieces. Shapes must match; dtypes must match
// unless options.convert_dtype. File names in an index that would leave their folder, and
// cache symlinks that point outside their repo's cache folder, are refused (FormatError).
// Throws the same ckptio::Error on every rank.
LoadCheckpointResult load_checkpoint(MPI_Comm comm, const StateDict& state_dict, const std::string& path,
                                     const LoadCheckpointOptions& options = {});

}  // namespace ckptio
