// Which items (a file's stored tensors) some rank asks for, and which two ranks or more ask
// for, from one bitwise-OR reduction of a few bitmaps per rank. Two different ranks differ
// in some bit b of their numbers, so an item that two ranks ask for shows up both among the
// ranks whose bit b is 0 and among those whose bit b is 1; an item that one rank asks for
// shows up on one side of every bit. 2 x ceil(log2(ranks)) bitmaps travel, however many
// ranks ask.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckptio::detail {

// This rank's part of the reduction: `mine` (one bit per item, 64 per word) placed by the
// bits of `rank` among `ranks`. Every rank's parts are OR-ed element by element.
std::vector<std::uint64_t> asked_items_contribution(const std::vector<std::uint64_t>& mine, int rank, int ranks);

struct AskedItems {
  std::vector<std::uint64_t> any;     // asked for by some rank
  std::vector<std::uint64_t> shared;  // asked for by two ranks or more
  bool any_shared() const;
};

// From the OR of every rank's contribution, for bitmaps of `words` words.
AskedItems asked_items(const std::vector<std::uint64_t>& reduced, std::size_t words, int ranks);

}  // namespace ckptio::detail
