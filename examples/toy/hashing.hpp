// Counter-based pseudo-random numbers and a byte hash for the toy trainer.
//
// Values derived from (seed, index) rather than drawn from a stream do not depend on how
// work is split across ranks, so the dataset and the initial weights are the same for
// every world size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace toy {

// SplitMix64's finaliser: a well-mixed 64-bit value from any 64-bit input.
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One well-mixed value from several keys (seed, purpose, index, ...).
inline std::uint64_t mix_keys(std::initializer_list<std::uint64_t> keys) {
  std::uint64_t state = 0;
  for (const std::uint64_t key : keys) state = splitmix64(state ^ key);
  return state;
}

// Maps 64 random bits to a float in [-1, 1).
inline float uniform_pm1(std::uint64_t bits) {
  const double unit = static_cast<double>(bits >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
  return static_cast<float>(2.0 * unit - 1.0);
}

// 64-bit FNV-1a over a byte stream.
class Fnv1a {
 public:
  void add(const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) {
      value_ ^= p[i];
      value_ *= 0x100000001b3ULL;
    }
  }
  std::uint64_t value() const { return value_; }

 private:
  std::uint64_t value_ = 0xcbf29ce484222325ULL;
};

}  // namespace toy
