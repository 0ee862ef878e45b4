// Each rank's own random stream (input-noise augmentation), and its checkpoint form.
#pragma once

#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "toy/hashing.hpp"

namespace toy {

// A fresh run's stream for `rank`.
inline std::mt19937_64 rank_rng_for(std::uint64_t seed, int rank) {
  return std::mt19937_64(mix_keys({seed, static_cast<std::uint64_t>(rank)}));
}

// The engine's full state in the standard's text form, as bytes for Snapshot::rank_blob.
inline std::vector<std::uint8_t> rng_to_bytes(const std::mt19937_64& rng) {
  std::ostringstream text;
  text << rng;
  const std::string state = text.str();
  return {state.begin(), state.end()};
}

inline std::mt19937_64 rng_from_bytes(const std::vector<std::uint8_t>& bytes) {
  std::istringstream text(std::string(bytes.begin(), bytes.end()));
  std::mt19937_64 rng;
  text >> rng;
  if (text.fail()) throw std::runtime_error("rank blob is not a std::mt19937_64 state");
  return rng;
}

// When a checkpoint was saved by a different number of ranks, no saved stream belongs to
// this rank. Derive a new one from all saved streams and the rank: deterministic (a rerun
// of the same resume draws the same numbers) and different on every rank.
inline std::mt19937_64 rank_rng_derived(const std::vector<std::vector<std::uint8_t>>& saved_blobs, int rank) {
  Fnv1a hash;
  for (const auto& blob : saved_blobs) hash.add(blob.data(), blob.size());
  return std::mt19937_64(mix_keys({hash.value(), static_cast<std::uint64_t>(rank)}));
}

}  // namespace toy
