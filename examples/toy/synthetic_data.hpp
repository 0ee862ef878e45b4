// The toy trainer's dataset: samples computed from their index, so no files are needed and
// any rank can produce any sample.
#pragma once

#include <cmath>
#include <cstdint>

#include "toy/hashing.hpp"

namespace toy {

inline constexpr std::int64_t kInputs = 16;  // features per sample
inline constexpr std::int64_t kOutputs = 4;  // targets per sample
inline constexpr std::int64_t kDatasetSize = 1024;

// Writes sample `index`: x (kInputs features in [-1, 1)) and y = sin(T x), where T is a fixed
// "teacher" matrix the model has to learn.
inline void make_sample(std::int64_t index, float* x, float* y) {
  constexpr std::uint64_t kDataSeed = 0x5eed0da7a;
  constexpr std::uint64_t kTeacherSeed = 0x7eac4e2;
  for (std::int64_t k = 0; k < kInputs; ++k) {
    x[k] = uniform_pm1(mix_keys({kDataSeed, static_cast<std::uint64_t>(index), static_cast<std::uint64_t>(k)}));
  }
  for (std::int64_t o = 0; o < kOutputs; ++o) {
    float projection = 0.0f;
    for (std::int64_t k = 0; k < kInputs; ++k) {
      const float teacher =
          uniform_pm1(mix_keys({kTeacherSeed, static_cast<std::uint64_t>(o), static_cast<std::uint64_t>(k)}));
      projection += teacher * x[k];
    }
    y[o] = std::sin(projection);
  }
}

}  // namespace toy
