#include "core/piece_checksum.hpp"

#include "core/checksum.hpp"
#include "core/copy_checksum.hpp"

namespace ckptio::detail {

std::uint64_t chunk_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept {
  if (chunk_bytes == 0) return bytes ? 1 : 0;
  return (bytes + chunk_bytes - 1) / chunk_bytes;
}

std::uint64_t chunk_checksum_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept {
  return chunk_bytes == 0 || bytes <= chunk_bytes ? 0 : chunk_count(bytes, chunk_bytes);
}

std::uint64_t hash_of_chunks(const std::vector<std::uint64_t>& chunks) noexcept {
  // Little-endian u64s, as on every platform ckptio supports.
  return xxh3_64(chunks.data(), chunks.size() * sizeof(std::uint64_t));
}

PieceChecksums checksum_piece(const void* data, std::uint64_t bytes, std::uint64_t chunk_bytes) {
  PieceChecksums out;
  const auto* p = static_cast<const unsigned char*>(data);
  const std::uint64_t chunks = chunk_checksum_count(bytes, chunk_bytes);
  if (chunks == 0) {
    out.whole = xxh3_64(p, bytes);
    return out;
  }
  out.chunks.reserve(chunks);
  for (std::uint64_t off = 0; off < bytes; off += chunk_bytes)
    out.chunks.push_back(xxh3_64(p + off, bytes - off < chunk_bytes ? bytes - off : chunk_bytes));
  out.whole = hash_of_chunks(out.chunks);
  return out;
}

PieceChecksums copy_and_checksum_piece(void* destination, const void* source, std::uint64_t bytes,
                                       std::uint64_t chunk_bytes) {
  auto* to = static_cast<unsigned char*>(destination);
  const auto* from = static_cast<const unsigned char*>(source);
  PieceChecksums out;
  const std::uint64_t chunks = chunk_checksum_count(bytes, chunk_bytes);
  if (chunks == 0) {
    out.whole = copy_and_xxh3_64(to, from, bytes);
    return out;
  }
  out.chunks.reserve(chunks);
  for (std::uint64_t off = 0; off < bytes; off += chunk_bytes) {
    const std::uint64_t n = bytes - off < chunk_bytes ? bytes - off : chunk_bytes;
    out.chunks.push_back(copy_and_xxh3_64(to + off, from + off, n));
  }
  out.whole = hash_of_chunks(out.chunks);
  return out;
}

}  // namespace ckptio::detail
