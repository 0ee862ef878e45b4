// How ckptio counts the cores a node's ranks may run on (node_oversubscribed): the CPUs in
// the union of their affinity masks, the cores online where a mask is unknown.
#include <gtest/gtest.h>
#include <sched.h>

#include <bit>
#include <cstdint>
#include <optional>
#include <vector>

#include "mpi/comm.hpp"

namespace ckptio::detail {
namespace {

TEST(NodeCores, CountsTheCpusOfTheAffinityUnion) {
  // CPUs 0, 1, 3 and 127.
  const std::vector<std::uint64_t> mask = {0b1011, std::uint64_t{1} << 63};
  EXPECT_EQ(node_cores(mask, 64), 4u);
}

TEST(NodeCores, FallsBackToTheCoresOnlineWhereAMaskIsUnknownOrEmpty) {
  EXPECT_EQ(node_cores(std::nullopt, 8), 8u);
  EXPECT_EQ(node_cores(std::nullopt, 0), 0u);  // nothing known
  EXPECT_EQ(node_cores(std::vector<std::uint64_t>(16, 0), 8), 8u);
}

// A thread bound to one core sees that core alone.
TEST(NodeCores, AffinityWordsFollowThisThreadsMask) {
  cpu_set_t original;
  ASSERT_EQ(sched_getaffinity(0, sizeof(original), &original), 0);
  const std::vector<std::uint64_t> words = cpu_affinity_words();
  ASSERT_FALSE(words.empty());
  unsigned set = 0;
  for (const auto word : words) set += static_cast<unsigned>(std::popcount(word));
  EXPECT_EQ(set, static_cast<unsigned>(CPU_COUNT(&original)));

  int first = 0;
  while (!CPU_ISSET(first, &original)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const std::vector<std::uint64_t> bound = cpu_affinity_words();
  ASSERT_EQ(sched_setaffinity(0, sizeof(original), &original), 0);
  std::vector<std::uint64_t> expected(words.size(), 0);
  expected[first / 64] = std::uint64_t{1} << (first % 64);
  EXPECT_EQ(bound, expected);
  EXPECT_EQ(node_cores(bound, 64), 1u);
}

}  // namespace
}  // namespace ckptio::detail
