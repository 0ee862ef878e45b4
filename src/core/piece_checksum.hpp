// Checksums of a stored piece. A piece of at most one checksum chunk has the XXH3-64 of its
// bytes (row-major order of the piece). A larger piece has the XXH3-64 of each fixed-size
// chunk of its bytes, and as its piece checksum the XXH3-64 of that list of chunk
// checksums (little-endian u64s), which ties the list together without hashing the data
// twice. Chunks let a reader that needs only part of a stored piece (a
// resharded load) verify what it read without reading the whole piece. See docs/FORMAT.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckptio::detail {

// Bytes per checksum chunk in the containers this library writes. A multiple of every
// element size.
inline constexpr std::uint64_t kChecksumChunkBytes = 1ull << 20;

struct PieceChecksums {
  std::uint64_t whole = 0;            // the piece checksum ("xxh3")
  std::vector<std::uint64_t> chunks;  // empty when the piece is at most one chunk
};

// The checksums of `bytes` bytes at `data`.
PieceChecksums checksum_piece(const void* data, std::uint64_t bytes, std::uint64_t chunk_bytes);

// Copies `bytes` bytes from `source` to `destination` one checksum chunk at a time and
// returns the checksums of the bytes, the same as checksum_piece(source, ...): each chunk is
// copied and hashed in one pass (copy_and_xxh3_64), so that the bytes are read from memory
// once, not twice.
PieceChecksums copy_and_checksum_piece(void* destination, const void* source, std::uint64_t bytes,
                                       std::uint64_t chunk_bytes);

// The piece checksum of a piece with these chunk checksums.
std::uint64_t hash_of_chunks(const std::vector<std::uint64_t>& chunks) noexcept;

// Number of chunks of a piece of `bytes` bytes (0 for an empty piece).
std::uint64_t chunk_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept;

// Number of chunk checksums a piece of `bytes` bytes has: none for a piece of at most one
// chunk (its piece checksum is the hash of its bytes), else chunk_count.
std::uint64_t chunk_checksum_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept;

}  // namespace ckptio::detail
