// xxh3_64 is XXH3-64 with seed 0 whichever implementation computes it (the inline code for
// small buffers, libxxhash's runtime-dispatched vector code for large ones where the build
// found it): checksums written by one machine must verify on another. Piece checksums taken
// during a copy (save_async's staging) equal those taken from the bytes alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/checksum.hpp"
#include "core/piece_checksum.hpp"

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

// Sizes around the chunk size and the streaming copy's 256 KiB threshold, destinations at
// every alignment the staging pool gives (64-byte slots, pieces starting inside them).
TEST(PieceChecksum, CopyAndChecksumCopiesExactlyAndMatchesChecksumPiece) {
  constexpr std::uint64_t kChunk = std::uint64_t{1} << 20;
  std::vector<unsigned char> source(3 * kChunk + 12345);
  std::uint64_t state = 0x243F6A8885A308D3ull;
  for (auto& byte : source) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    byte = static_cast<unsigned char>(state >> 56);
  }
  std::vector<unsigned char> destination(source.size() + 64);
  for (std::uint64_t bytes : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{256} << 10, kChunk - 1, kChunk,
                              kChunk + 1, 3 * kChunk + 4, std::uint64_t{source.size()} - 16}) {
    for (std::size_t offset : {std::size_t{0}, std::size_t{4}, std::size_t{16}}) {
      std::fill(destination.begin(), destination.end(), 0xA5);
      const PieceChecksums copied =
          copy_and_checksum_piece(destination.data() + offset, source.data() + 8, bytes, kChunk);
      const PieceChecksums alone = checksum_piece(source.data() + 8, bytes, kChunk);
      EXPECT_EQ(copied.whole, alone.whole) << bytes << " bytes, destination offset " << offset;
      EXPECT_EQ(copied.chunks, alone.chunks) << bytes << " bytes, destination offset " << offset;
      EXPECT_EQ(copied.chunks.size(), bytes > kChunk ? chunk_count(bytes, kChunk) : 0u);
      EXPECT_TRUE(std::equal(source.begin() + 8, source.begin() + 8 + static_cast<std::ptrdiff_t>(bytes),
                             destination.begin() + static_cast<std::ptrdiff_t>(offset)))
          << bytes << " bytes, destination offset " << offset;
      // Nothing written around the copy.
      for (std::size_t i = 0; i < offset; ++i) ASSERT_EQ(destination[i], 0xA5);
      ASSERT_EQ(destination[offset + bytes], 0xA5);
    }
  }
}

}  // namespace
}  // namespace ckptio::detail
