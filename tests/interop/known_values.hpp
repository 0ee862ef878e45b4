// Interop test helper: global tensors of known values for every dtype. Each tensor's first
// elements are the dtype's edge cases (signed zero, extremes, subnormals), the rest a
// deterministic pseudo-random pattern; NaN never occurs, so values compare exactly.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/dtype.hpp"

namespace ckptio::interop {

struct KnownValues {
  std::vector<std::uint8_t> bytes;  // the global tensor, row-major, little-endian
  nlohmann::json values;            // the same elements as JSON numbers / booleans
};

// `elements` known values of `dtype`; `seed` varies the pattern between tensors.
KnownValues make_known_values(DType dtype, std::int64_t elements, std::uint64_t seed);

}  // namespace ckptio::interop
