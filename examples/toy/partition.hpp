// How the toy trainer splits rows, batches and flat tensors across ranks.
#pragma once

#include <cstdint>
#include <vector>

namespace toy {

// A half-open range [begin, end) of indices.
struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
};

// Splits n items into `parts` contiguous ranges in order; the first n % parts ranges get one
// item more, so sizes differ by at most one (64 rows on 3 ranks: 22, 21, 21).
inline Range split_range(std::int64_t n, int parts, int index) {
  const std::int64_t base = n / parts;
  const std::int64_t extra = n % parts;
  const std::int64_t begin = index * base + (index < extra ? index : extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

// Receive counts and displacements for MPI_(All)Gatherv when each rank holds its
// split_range(n, parts, rank) of n items and every item is `item_size` elements long.
struct GathervLayout {
  std::vector<int> counts;
  std::vector<int> displacements;
};

inline GathervLayout gatherv_layout(std::int64_t n, int parts, std::int64_t item_size) {
  GathervLayout layout;
  for (int index = 0; index < parts; ++index) {
    const Range range = split_range(n, parts, index);
    layout.counts.push_back(static_cast<int>(range.size() * item_size));
    layout.displacements.push_back(static_cast<int>(range.begin * item_size));
  }
  return layout;
}

}  // namespace toy
