// xxh3_64 is XXH3-64 with seed 0 whichever implementation computes it (the inline code for
// small buffers, libxxhash's runtime-dispatched vector code for large ones where the build
// found it): checksums written by one machine must verify on another.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/checksum.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckptio::detail {
namespace {

TEST(Checksum, KnownValues) {
  EXPECT_EQ(xxh3_64("", 0), 0x2D06800538D394C2ull);  // XXH3-64 of nothing (xxHash's test vectors)
}

TEST(Checksum, EverySizeMatchesTheReferenceCode) {
  std::vector<unsigned char> data((1u << 20) + 4103);
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (auto& byte : data) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    byte = static_cast<unsigned char>(state >> 56);
  }
  for (std::size_t bytes : {std::size_t{1}, std::size_t{240}, std::size_t{4095}, std::size_t{4096}, std::size_t{65537},
                            std::size_t{1} << 20, data.size()}) {
    for (std::size_t offset : {std::size_t{0}, std::size_t{7}}) {
      if (offset + bytes > data.size()) continue;
      EXPECT_EQ(xxh3_64(data.data() + offset, bytes), XXH3_64bits(data.data() + offset, bytes))
          << bytes << " bytes at offset " << offset;
    }
  }
}

}  // namespace
}  // namespace ckptio::detail
