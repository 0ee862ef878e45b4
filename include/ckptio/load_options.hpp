// ckptio: what every load accepts (LoadOptions) and what it reports about names that did
// not match (KeyReport): CheckpointIO::load, CheckpointIO::load_latest and load_checkpoint.
#pragma once

#include <string>
#include <vector>

namespace ckptio {

// Options of a load. Each field says which calls it applies to. CheckpointIO::load and
// load_latest refuse (UsageError) the fields for load_checkpoint only, rather than ignore
// them. load_checkpoint takes any kind of path in one call, so it ignores `group` for
// safetensors and `revision` for anything but a Hugging Face repo id.
struct LoadOptions {
  // Every call. Missing or unexpected keys are a MismatchError that lists them. With
  // strict = false they are returned in the result's KeyReport and the tensors that match
  // are loaded.
  bool strict = true;
  // Every call; it matters for ckptio containers (safetensors and .pt files carry no
  // checksums). Verify the XXH3-64 checksums of every stored piece (chunk) read; a mismatch
  // is an IntegrityError naming the file, tensor and piece. A container's running state and
  // per-rank blobs are always verified.
  bool verify = true;
  // load_checkpoint only. For a ckptio container: the group to load (empty: "ema" when
  // present, else "model"). For a PyTorch file: the top-level key whose tensors to load,
  // named without it (empty: "ema" or "model" when the file nests its tensors under one,
  // else every tensor). CheckpointIO::load fills the groups of its Snapshot instead.
  std::string group;
  // load_checkpoint only, for a Hugging Face repo id: the revision (a branch or tag in
  // refs/, or a commit hash); empty means "main".
  std::string revision;
  // load_checkpoint only. Converts stored floating-point tensors (F64, F32, F16, BF16) to
  // the dtype of the state dict's tensor; without it a dtype difference is a MismatchError.
  bool convert_dtype = false;
};

// Keys that did not match on load.
struct KeyReport {
  // A tensor's key: its group and its name within the group. The group is "model",
  // "optimizer" or "ema" for a ckptio container; for load_checkpoint it is the group or
  // top-level key that was loaded (LoadOptions::group as resolved), empty when the source
  // has none (safetensors, a .pt file read whole).
  struct Key {
    std::string group;
    std::string name;
    bool operator==(const Key&) const = default;
  };
  std::vector<Key> missing;     // requested by some rank, not stored
  std::vector<Key> unexpected;  // stored (in a requested group), requested by no rank
  bool clean() const { return missing.empty() && unexpected.empty(); }
};

}  // namespace ckptio
