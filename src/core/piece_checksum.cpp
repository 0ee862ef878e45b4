#include "core/piece_checksum.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <memory>

namespace ckptio::detail {

std::uint64_t chunk_count(std::uint64_t bytes, std::uint64_t chunk_bytes) noexcept {
  if (chunk_bytes == 0) return bytes ? 1 : 0;
  return (bytes + chunk_bytes - 1) / chunk_bytes;
}

PieceChecksums checksum_piece(const void* data, std::uint64_t bytes, std::uint64_t chunk_bytes) {
  PieceChecksums out;
  const auto* p = static_cast<const unsigned char*>(data);
  if (chunk_bytes == 0 || bytes <= chunk_bytes) {
    out.whole = XXH3_64bits(p, bytes);
    return out;
  }
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state.get());
  out.chunks.reserve(chunk_count(bytes, chunk_bytes));
  for (std::uint64_t off = 0; off < bytes; off += chunk_bytes) {
    const std::uint64_t n = bytes - off < chunk_bytes ? bytes - off : chunk_bytes;
    out.chunks.push_back(XXH3_64bits(p + off, n));  // the chunk is in cache for the update below
    XXH3_64bits_update(state.get(), p + off, n);
  }
  out.whole = XXH3_64bits_digest(state.get());
  return out;
}

}  // namespace ckptio::detail
