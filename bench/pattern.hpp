// The deterministic contents of the synthetic tensors, and the check that a load restored
// them. The value depends only on the tensor and the element's global position, so it can be
// checked under any decomposition.
#pragma once

#include <cstdint>
#include <string>

#include "synthetic_state.hpp"

namespace ckptio_bench {

// Writes the pattern into the block.
void fill_pattern(const Workload& workload, LocalBlock& block);

// Overwrites the block with NaNs, which never equal the pattern, so that a load that leaves
// memory untouched cannot pass the check.
void poison(LocalBlock& block);

struct PatternCheck {
  std::uint64_t mismatches = 0;
  std::string first_mismatch;  // where and what, empty when none
};

// Compares the block against the pattern, element by element, bit for bit.
PatternCheck check_pattern(const Workload& workload, const LocalBlock& block);

}  // namespace ckptio_bench
