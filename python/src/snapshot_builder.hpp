// A C++ Snapshot assembled from Python: the pure-Python ckptio.Snapshot describes each tensor
// (address, dtype, shape, piece) and the running state (as JSON text), then hands this to a
// save or load, which runs with the GIL released. The addresses point into the Python
// objects' own memory (zero copy); the caller keeps those objects alive during the call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckptio/snapshot.hpp"

namespace ckptio::python {

// Builds a TensorShard over memory at `address` (read-only shards may be saved, not loaded).
TensorShard make_shard(std::uintptr_t address, const std::string& dtype, const Shape& global_shape,
                       const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count, bool read_only,
                       int device);
TensorShard make_flat_shard(std::uintptr_t address, const std::string& dtype, const Shape& global_shape,
                            std::int64_t begin, std::int64_t end, bool read_only, int device);
// Parses JSON text given for a running-state field; a UsageError naming the field otherwise.
nlohmann::json parse_json_field(const std::string& text, const char* field);

struct SnapshotBuilder {
  Snapshot snapshot;

  StateDict& group(const std::string& name);
  void add_block(const std::string& group_name, const std::string& name, std::uintptr_t address,
                 const std::string& dtype, const Shape& global_shape, const std::vector<std::int64_t>& offset,
                 const std::vector<std::int64_t>& count, bool read_only, int device);
  void add_flat(const std::string& group_name, const std::string& name, std::uintptr_t address,
                const std::string& dtype, const Shape& global_shape, std::int64_t begin, std::int64_t end,
                bool read_only, int device);
  void set_running(std::int64_t epoch, std::int64_t step, std::int64_t global_step, const std::string& lr_scheduler,
                   const std::string& sampler, const std::string& extras);
};

}  // namespace ckptio::python
