#include "core/checksum.hpp"

#include <cstdio>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ckptio::detail {

#if CKPTIO_XXH3_DISPATCH
// libxxhash's runtime dispatcher (the same hash, computed with the CPU's widest vector unit).
extern "C" XXH64_hash_t XXH3_64bits_dispatch(const void* data, size_t bytes);
#endif

std::uint64_t xxh3_64(const void* data, std::size_t bytes) noexcept {
#if CKPTIO_XXH3_DISPATCH
  // Large buffers (checksum chunks of tensor data): a third of the CPU time of the inline
  // SSE2 code where the CPU has AVX2. Small ones stay inline (no call, no dispatch).
  if (bytes >= 4096) return XXH3_64bits_dispatch(data, bytes);
#endif
  return XXH3_64bits(data, bytes);
}

void write_hex64(std::uint64_t value, char* out) noexcept {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, value >>= 4) out[i] = kDigits[value & 15];
}

std::string to_hex64(std::uint64_t value) {
  std::string out(16, '0');
  write_hex64(value, out.data());
  return out;
}

std::optional<std::uint64_t> from_hex64(std::string_view text) noexcept {
  if (text.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<unsigned>(d);
  }
  return v;
}

}  // namespace ckptio::detail
