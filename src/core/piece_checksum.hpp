// Checksums of a stored piece: the XXH3-64 of the whole piece plus, for pieces larger than
// one checksum chunk, the XXH3-64 of each fixed-size chunk of the piece's bytes (row-major
// order of the piece). Chunks let a reader that needs only part of a stored piece (a
// resharded load) verify what it read without reading the whole piece. See docs/FORMAT.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ckptio::detail {

// Bytes per checksum chunk in the containers this library writes. A multiple of every
// element size.
inline constexpr std::uint64_t kChecksumChunkBytes = 4ull << 20;

struct PieceChecksums {
  std::uint64_t whole = 0;
  std::vector<std::uint64_t> chunks;  // empty when the piece is at most one chunk
};

// Hashes `bytes` bytes at `data` once per chunk and once as a whole (one pass over memory).
PieceChecksums checksum_piece(const void* data, std::uint64_t bytes, std::uint64_t chunk_bytes);

// Number of chunks of a piece of `bytes` bytes (0 for an empty piece).
std::uint64_t chunk_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept;

}  // namespace ckptio::detail
