#include "io/local_tensors.hpp"

#include "ckptio/error.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"

namespace ckptio::detail {

std::string qualified(const std::string& group, const std::string& name) { return group + "/" + name; }

std::vector<LocalTensor> collect_local_tensors(const Snapshot& snapshot, int rank, bool allow_device) {
  std::vector<LocalTensor> out;
  for (int g = 0; g < 3; ++g) {
    const auto& dict = snapshot.group(kGroupNames[g]);
    if (!dict) continue;
    for (const auto& [name, shard] : *dict) {
      // Built only for an error: at 100,000 tensors the names alone cost a planning step.
      const auto where = [&] { return qualified(kGroupNames[g], name); };
      if (shard.device < kHostMemory)
        throw UsageError("tensor " + where() + " on rank " + std::to_string(rank) + ": device " +
                         std::to_string(shard.device) + " is neither a CUDA device ordinal (>= 0) nor " +
                         "kHostMemory (-1)");
      if (shard.device != kHostMemory && allow_device && cuda::device_supported() &&
          shard.device >= cuda::device_count())
        throw UsageError("tensor " + where() + " on rank " + std::to_string(rank) + ": CUDA device " +
                         std::to_string(shard.device) + " is not usable in this process (it sees " +
                         std::to_string(cuda::device_count()) + " CUDA devices)");
      if (shard.device != kHostMemory && !(allow_device && cuda::device_supported()))
        throw UsageError("tensor " + where() + " on rank " + std::to_string(rank) + ": device memory (CUDA device " +
                         std::to_string(shard.device) + ") is not supported by this build; pass host memory");
      if (auto problem = piece_problem(shard); !problem.empty())
        throw UsageError("tensor " + where() + " on rank " + std::to_string(rank) + ": " + problem);
      out.push_back(LocalTensor{g, &name, &shard, segments_of(shard)});
    }
  }
  return out;
}

const char* byte_pointer(const LocalTensor& t, const Segment& s) {
  return static_cast<const char*>(t.shard->data.get()) +
         static_cast<std::size_t>(s.memory_offset) * dtype_size(t.shard->dtype);
}

char* writable_byte_pointer(const LocalTensor& t, const Segment& s) {
  return static_cast<char*>(t.shard->data.writable()) +
         static_cast<std::size_t>(s.memory_offset) * dtype_size(t.shard->dtype);
}

}  // namespace ckptio::detail
