// ckptio: load weights for inference or fine-tuning from a safetensors export, a sharded
// Hugging Face folder, a model in the local Hugging Face cache, or a ckptio container.
#pragma once

#include <mpi.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/load_options.hpp"
#include "ckptio/state_dict.hpp"

namespace ckptio {

// What load_checkpoint read and which keys did not match.
struct LoadCheckpointResult {
  // Keys by the group or top-level key that was loaded (see KeyReport::Key); non-empty only
  // with LoadOptions::strict = false.
  KeyReport keys;
  std::vector<std::filesystem::path> files;  // the files read
};

// Collective over comm. Loads the tensors of `state_dict` (each rank its own shards: blocks
// or flat ranges, any split) from `path`, which is
//   - a .safetensors file,
//   - a folder or `*.safetensors.index.json` of a sharded export (Hugging Face layout),
//   - a ckptio container or checkpoint root (see LoadOptions::group; its checksums are
//     verified unless LoadOptions::verify is false),
//   - a PyTorch .pt/.pth file written by torch.save, read weights-only (see LoadOptions::group),
//   - or, when nothing of that name exists, a Hugging Face repo id ("org/name") resolved in
//     the local cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub);
//     nothing is ever downloaded.
// Each rank reads only the bytes of its own pieces, into memory it may write (a shard made
// from a pointer to const is a UsageError). Shapes must match; dtypes must match unless
// LoadOptions::convert_dtype. File names in an index that would leave their folder, and
// cache symlinks that point outside their repo's cache folder, are refused (FormatError).
// Throws the same ckptio::Error on every rank.
LoadCheckpointResult load_checkpoint(MPI_Comm comm, const StateDict& state_dict, const std::string& path,
                                     const LoadOptions& options = {});

}  // namespace ckptio
