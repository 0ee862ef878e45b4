// asked_items: which items some rank asks for and which two ranks or more ask for, from the
// OR of every rank's contribution, against counting directly, for every rank count from 1
// to 9 and random requests.
#include <gtest/gtest.h>

#include <random>

#include "core/asked_items.hpp"

namespace ckptio::detail {
namespace {

TEST(AskedItems, AgreesWithCountingEveryRanksRequests) {
  std::mt19937_64 random(7);
  for (int ranks = 1; ranks <= 9; ++ranks) {
    for (int trial = 0; trial < 20; ++trial) {
      constexpr std::size_t kItems = 150, kWords = (kItems + 63) / 64;
      std::vector<std::vector<std::uint64_t>> mine(ranks, std::vector<std::uint64_t>(kWords, 0));
      std::vector<int> askers(kItems, 0);
      for (int r = 0; r < ranks; ++r)
        for (std::size_t i = 0; i < kItems; ++i)
          if (random() % (trial % 4 + 2) == 0) {  // from dense to sparse requests
            mine[r][i / 64] |= std::uint64_t{1} << (i % 64);
            ++askers[i];
          }
      std::vector<std::uint64_t> reduced;
      for (int r = 0; r < ranks; ++r) {
        const auto part = asked_items_contribution(mine[r], r, ranks);
        if (reduced.empty()) reduced.assign(part.size(), 0);
        ASSERT_EQ(part.size(), reduced.size());
        for (std::size_t w = 0; w < part.size(); ++w) reduced[w] |= part[w];
      }
      const AskedItems asked = asked_items(reduced, kWords, ranks);
      bool any_shared = false;
      for (std::size_t i = 0; i < kItems; ++i) {
        SCOPED_TRACE("ranks " + std::to_string(ranks) + ", item " + std::to_string(i));
        EXPECT_EQ(asked.any[i / 64] >> (i % 64) & 1, askers[i] >= 1 ? 1u : 0u);
        EXPECT_EQ(asked.shared[i / 64] >> (i % 64) & 1, askers[i] >= 2 ? 1u : 0u);
        any_shared = any_shared || askers[i] >= 2;
      }
      EXPECT_EQ(asked.any_shared(), any_shared);
    }
  }
}

TEST(AskedItems, ContributionHoldsTwoBitmapsPerBitOfTheRankNumbers) {
  const std::vector<std::uint64_t> mine = {5, 9};
  EXPECT_EQ(asked_items_contribution(mine, 0, 1), mine);
  EXPECT_EQ(asked_items_contribution(mine, 1, 2), (std::vector<std::uint64_t>{0, 0, 5, 9}));
  EXPECT_EQ(asked_items_contribution(mine, 2, 3), (std::vector<std::uint64_t>{5, 9, 0, 0, 0, 0, 5, 9}));
}

}  // namespace
}  // namespace ckptio::detail
