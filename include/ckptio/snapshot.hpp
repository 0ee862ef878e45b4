// ckptio: everything a training job needs to resume.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/load_options.hpp"
#include "ckptio/state_dict.hpp"

namespace ckptio {

// The groups a container holds, in file order.
inline constexpr const char* kGroupNames[] = {"model", "optimizer", "ema"};

// The running state of a job. epoch, step, global_step and the JSON values must be the
// same on every rank (save checks it). global_step counts completed optimizer steps.
struct RunningState {
  std::int64_t epoch = 0;
  std::int64_t step = 0;         // step within the epoch
  std::int64_t global_step = 0;  // completed optimizer steps
  nlohmann::json lr_scheduler = nlohmann::json::object();
  nlohmann::json sampler = nlohmann::json::object();
  nlohmann::json extras = nlohmann::json::object();
};

// What save writes and what load fills. Any StateDict may be absent. For load, the shards
// say where each rank wants its part of each tensor to go.
struct Snapshot {
  std::optional<StateDict> model;
  std::optional<StateDict> optimizer;
  std::optional<StateDict> ema;
  RunningState running;
  // Opaque per-rank bytes (an RNG state, say); may differ in size between ranks.
  std::vector<std::uint8_t> rank_blob;

  const std::optional<StateDict>& group(std::string_view name) const;
};

// What load returns.
struct LoadResult {
  std::string path;  // the container that was loaded
  // "local" when load_latest restored a node-local checkpoint (CheckpointOptions::local_dir;
  // `path` is then this node's container), "shared" otherwise.
  std::string level = "shared";
  RunningState running;
  // This rank's blob when the checkpoint was saved by as many ranks as load runs on;
  // empty otherwise.
  std::vector<std::uint8_t> rank_blob;
  // Every saving rank's blob, in rank order, when the world size differs (empty otherwise).
  std::vector<std::vector<std::uint8_t>> saved_rank_blobs;
  int saved_world_size = 0;
  KeyReport keys;  // group and name of each key; non-empty only with LoadOptions::strict = false
  // Tensor bytes this rank read from the file, and bytes it received from the rank that
  // read a piece it shares with others (a replicated tensor is read once, then sent).
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_received = 0;
  // The part of bytes_received that came from device to device over NCCL (a load into CUDA
  // device memory in a build with NCCL, every rank on a GPU of its own); 0 otherwise.
  std::uint64_t bytes_received_nccl = 0;
};

}  // namespace ckptio
