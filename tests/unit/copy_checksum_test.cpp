// copy_and_xxh3_64 copies exactly the bytes asked for and returns XXH3-64 of them, with every
// machine code this CPU runs: the one-pass vector codes compute the hash themselves, so each
// is checked against xxHash's own code at every length around the stripe (64 bytes) and block
// (1 KiB) boundaries, and at the checksum chunk size.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/copy_checksum.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckptio::detail {
namespace {

constexpr unsigned char kUntouched = 0xA5;
constexpr std::size_t kGuardBytes = 64;

std::vector<unsigned char> pseudo_random_bytes(std::size_t count) {
  std::vector<unsigned char> bytes(count);
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (auto& byte : bytes) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    byte = static_cast<unsigned char>(state >> 56);
  }
  return bytes;
}

// A 64-byte aligned destination of `bytes` with guard bytes after it.
class Destination {
 public:
  explicit Destination(std::size_t bytes) : storage_(bytes + kGuardBytes + 64, kUntouched) {
    const auto address = reinterpret_cast<std::uintptr_t>(storage_.data());
    begin_ = storage_.data() + (64 - address % 64) % 64;
  }
  unsigned char* data() { return begin_; }
  void reset() { std::fill(storage_.begin(), storage_.end(), kUntouched); }
  // Whether exactly [begin, begin + bytes) holds `expected` and nothing else changed.
  ::testing::AssertionResult holds(const unsigned char* expected, std::size_t bytes) const {
    for (const unsigned char* p = storage_.data(); p < begin_; ++p)
      if (*p != kUntouched) return ::testing::AssertionFailure() << "written before the destination";
    for (std::size_t i = 0; i < bytes; ++i)
      if (begin_[i] != expected[i]) return ::testing::AssertionFailure() << "byte " << i << " differs";
    for (const unsigned char* p = begin_ + bytes; p < storage_.data() + storage_.size(); ++p)
      if (*p != kUntouched) return ::testing::AssertionFailure() << "written after the destination";
    return ::testing::AssertionSuccess();
  }

 private:
  std::vector<unsigned char> storage_;
  unsigned char* begin_ = nullptr;
};

class CopyChecksumCodes : public ::testing::TestWithParam<CopyChecksumCode> {};

TEST_P(CopyChecksumCodes, CopiesExactlyAndMatchesXxh3AtEveryLengthNearAStripeOrBlockEdge) {
  const CopyChecksumCode code = GetParam();
  if (!copy_checksum_code_runs(code)) GTEST_SKIP() << "this CPU does not run this code";
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  const std::vector<unsigned char> source = pseudo_random_bytes(3 * kChunk + 4096);
  std::vector<std::size_t> lengths;
  for (std::size_t bytes = 0; bytes <= 2300; ++bytes) lengths.push_back(bytes);  // all of the first 2 blocks
  for (std::size_t base : {std::size_t{16} << 10, kChunk, 3 * kChunk})
    for (std::size_t delta : {0, 1, 63, 64, 65, 1023, 1024, 1025})
      for (std::size_t bytes : {base - delta, base + delta}) lengths.push_back(bytes);
  for (std::size_t source_offset : {0, 1, 33}) {
    for (std::size_t bytes : lengths) {
      const unsigned char* from = source.data() + source_offset;
      Destination destination(bytes);
      const std::uint64_t hash = copy_and_xxh3_64(code, destination.data(), from, bytes);
      ASSERT_EQ(hash, XXH3_64bits(from, bytes)) << bytes << " bytes from offset " << source_offset;
      ASSERT_TRUE(destination.holds(from, bytes)) << bytes << " bytes from offset " << source_offset;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EachCode, CopyChecksumCodes,
                         ::testing::Values(CopyChecksumCode::kPortable, CopyChecksumCode::kAvx2,
                                           CopyChecksumCode::kAvx512),
                         [](const ::testing::TestParamInfo<CopyChecksumCode>& info) {
                           switch (info.param) {
                             case CopyChecksumCode::kPortable:
                               return "Portable";
                             case CopyChecksumCode::kAvx2:
                               return "Avx2";
                             case CopyChecksumCode::kAvx512:
                               return "Avx512";
                           }
                           return "Unknown";
                         });

// The code chosen for the caller: one pass only for large copies into an aligned destination;
// destinations at any other alignment and small copies give the same bytes and hash.
TEST(CopyChecksum, EveryDestinationAlignmentAndSizeGivesTheSameBytesAndHash) {
  const std::vector<unsigned char> source = pseudo_random_bytes((std::size_t{1} << 20) + 300);
  Destination destination(source.size() + 64);
  for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{240}, std::size_t{241}, std::size_t{4096},
                            (std::size_t{256} << 10) - 1, std::size_t{256} << 10, source.size() - 7}) {
    for (std::size_t destination_offset : {0, 4, 16, 32, 48}) {
      destination.reset();
      unsigned char* to = destination.data() + destination_offset;
      const std::uint64_t hash = copy_and_xxh3_64(to, source.data() + 7, bytes);
      EXPECT_EQ(hash, XXH3_64bits(source.data() + 7, bytes)) << bytes << " bytes to offset " << destination_offset;
      std::vector<unsigned char> expected(destination_offset, kUntouched);
      expected.insert(expected.end(), source.begin() + 7, source.begin() + 7 + static_cast<std::ptrdiff_t>(bytes));
      EXPECT_TRUE(destination.holds(expected.data(), expected.size()))
          << bytes << " bytes to offset " << destination_offset;
    }
  }
}

// The build machines have AVX2: if the detection broke, the one-pass code would silently
// never run and the staging copy would be slow again.
TEST(CopyChecksum, TheVectorCodeRunsWhereTheCpuHasAvx2) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(copy_checksum_code_runs(CopyChecksumCode::kAvx2), static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(copy_checksum_code_runs(CopyChecksumCode::kAvx512), static_cast<bool>(__builtin_cpu_supports("avx512f")));
#else
  EXPECT_FALSE(copy_checksum_code_runs(CopyChecksumCode::kAvx2));
#endif
  EXPECT_TRUE(copy_checksum_code_runs(CopyChecksumCode::kPortable));
}

}  // namespace
}  // namespace ckptio::detail
