#include "core/asked_items.hpp"

#include <algorithm>

namespace ckptio::detail {
namespace {

// Bits that tell the ranks apart: 0 for one rank.
int rank_bits(int ranks) {
  int bits = 0;
  while ((1 << bits) < ranks) ++bits;
  return bits;
}

}  // namespace

std::vector<std::uint64_t> asked_items_contribution(const std::vector<std::uint64_t>& mine, int rank, int ranks) {
  const int bits = rank_bits(ranks);
  if (bits == 0) return mine;
  const std::size_t words = mine.size();
  std::vector<std::uint64_t> out(2 * static_cast<std::size_t>(bits) * words, 0);
  for (int b = 0; b < bits; ++b) {
    const std::size_t side = (static_cast<unsigned>(rank) >> b) & 1u;  // bitmap 2b: bit b is 0; 2b+1: it is 1
    std::copy(mine.begin(), mine.end(), out.begin() + static_cast<std::ptrdiff_t>((2 * b + side) * words));
  }
  return out;
}

AskedItems asked_items(const std::vector<std::uint64_t>& reduced, std::size_t words, int ranks) {
  const int bits = rank_bits(ranks);
  AskedItems out;
  out.any.assign(reduced.begin(), reduced.begin() + static_cast<std::ptrdiff_t>(words));
  out.shared.assign(words, 0);
  if (bits == 0) return out;
  for (std::size_t w = 0; w < words; ++w) out.any[w] |= reduced[words + w];
  for (int b = 0; b < bits; ++b) {
    const std::uint64_t* zero = reduced.data() + 2 * static_cast<std::size_t>(b) * words;
    const std::uint64_t* one = zero + words;
    for (std::size_t w = 0; w < words; ++w) out.shared[w] |= zero[w] & one[w];
  }
  return out;
}

bool AskedItems::any_shared() const {
  return std::any_of(shared.begin(), shared.end(), [](std::uint64_t w) { return w != 0; });
}

}  // namespace ckptio::detail
