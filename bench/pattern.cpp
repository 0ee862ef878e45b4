#include "pattern.hpp"

#include <bit>
#include <limits>

namespace ckptio_bench {

namespace {

// A multiplicative hash of the global element index, cut to 24 bits so that it is exactly
// representable as a float: cheap enough to fill gigabytes, and no two neighbouring elements
// or tensors share a value, so a misplaced block is caught.
inline float pattern_value(std::uint32_t tensor_salt, std::uint64_t global_index) {
  const std::uint32_t hash = static_cast<std::uint32_t>(global_index) * 2654435761u + tensor_salt;
  return static_cast<float>(hash >> 8);
}

inline std::uint32_t tensor_salt(int tensor) { return static_cast<std::uint32_t>(tensor) * 0x9E3779B9u; }

inline std::uint64_t first_global_index(const Workload& workload, const LocalBlock& block) {
  return static_cast<std::uint64_t>(block.rows.begin) * static_cast<std::uint64_t>(workload.columns);
}

}  // namespace

void fill_pattern(const Workload& workload, LocalBlock& block) {
  const std::uint32_t salt = tensor_salt(block.tensor);
  const std::uint64_t base = first_global_index(workload, block);
  float* data = block.data.get();
  for (std::size_t i = 0; i < block.elements; ++i) data[i] = pattern_value(salt, base + i);
}

void poison(LocalBlock& block) {
  float* data = block.data.get();
  for (std::size_t i = 0; i < block.elements; ++i) data[i] = std::numeric_limits<float>::quiet_NaN();
}

PatternCheck check_pattern(const Workload& workload, const LocalBlock& block) {
  const std::uint32_t salt = tensor_salt(block.tensor);
  const std::uint64_t base = first_global_index(workload, block);
  const float* data = block.data.get();
  PatternCheck check;
  for (std::size_t i = 0; i < block.elements; ++i) {
    const float expected = pattern_value(salt, base + i);
    if (std::bit_cast<std::uint32_t>(data[i]) == std::bit_cast<std::uint32_t>(expected)) continue;
    if (check.mismatches++ == 0) {
      const std::uint64_t index = base + i;
      const auto columns = static_cast<std::uint64_t>(workload.columns);
      check.first_mismatch = workload.group_of(block.tensor) + std::string("/") + workload.name_of(block.tensor) + "[" +
                             std::to_string(index / columns) + ", " + std::to_string(index % columns) + "]: expected " +
                             std::to_string(expected) + ", loaded " + std::to_string(data[i]);
    }
  }
  return check;
}

}  // namespace ckptio_bench
