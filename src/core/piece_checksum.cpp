#include "core/piece_checksum.hpp"

#include "core/checksum.hpp"
#include "core/host_memory.hpp"

namespace ckptio::detail {

std::uint64_t chunk_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept {
  if (chunk_bytes == 0) return bytes ? 1 : 0;
  return (bytes + chunk_bytes - 1) / chunk_bytes;
}

std::uint64_t hash_of_chunks(const std::vector<std::uint64_t>& chunks) noexcept {
  // Little-endian u64s, as on every platform ckptio supports.
  return xxh3_64(chunks.data(), chunks.size() * sizeof(std::uint64_t));
}

PieceChecksums checksum_piece(const void* data, std::uint64_t bytes, std::uint64_t chunk_bytes) {
  PieceChecksums out;
  const auto* p = static_cast<const unsigned char*>(data);
  if (chunk_bytes == 0 || bytes <= chunk_bytes) {
    out.whole = xxh3_64(p, bytes);
    return out;
  }
  out.chunks.reserve(chunk_count(bytes, chunk_bytes));
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
  if (chunk_bytes == 0 || bytes <= chunk_bytes) {
    if (bytes > 0) copy_streaming(to, from, bytes);  // an empty piece may have no memory at all
    out.whole = xxh3_64(from, bytes);
    return out;
  }
  out.chunks.reserve(chunk_count(bytes, chunk_bytes));
  for (std::uint64_t off = 0; off < bytes; off += chunk_bytes) {
    const std::uint64_t n = bytes - off < chunk_bytes ? bytes - off : chunk_bytes;
    copy_streaming(to + off, from + off, n);
    out.chunks.push_back(xxh3_64(from + off, n));
  }
  out.whole = hash_of_chunks(out.chunks);
  return out;
}

}  // namespace ckptio::detail
