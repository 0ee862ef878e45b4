// A rank's own tensors as the save and load paths see them: the shards of a snapshot,
// checked and cut into contiguous segments, in the order they are declared.
#pragma once

#include <string>
#include <vector>

#include "ckptio/snapshot.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail {

struct LocalTensor {
  int group;
  const std::string* name;
  const TensorShard* shard;
  std::vector<Segment> segments;
};

// "<group>/<name>", the name of a tensor in messages and in the container.
std::string qualified(const std::string& group, const std::string& name);

// The tensors of `snapshot` on this rank, flattened over the groups. Throws UsageError
// ("tensor <group>/<name> on rank R: ..."; the agreement
// names the operation) for a shard that cannot be saved or loaded. Device
// shards reach the HDF5 code only as host copies (StagingPool); `allow_device` accepts them
// where the caller stages them next, in a build with CUDA.
std::vector<LocalTensor> collect_local_tensors(const Snapshot& snapshot, int rank, bool allow_device = false);

// Where segment `s` of `t` starts in the shard's memory.
const char* byte_pointer(const LocalTensor& t, const Segment& s);
char* writable_byte_pointer(const LocalTensor& t, const Segment& s);

}  // namespace ckptio::detail
