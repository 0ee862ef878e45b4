#include "core/copy_checksum.hpp"

#include <cstring>

#include "core/checksum.hpp"
#include "core/host_memory.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CKPTIO_COPY_CHECKSUM_X86 1
#include <immintrin.h>
#else
#define CKPTIO_COPY_CHECKSUM_X86 0
#endif

namespace ckptio::detail {

namespace {

// Below this, copy_and_xxh3_64 copies with memcpy into the cache and hashes from there (as
// copy_streaming does: non-temporal stores pay off only for copies that do not fit in it).
constexpr std::size_t kOnePassMinimum = std::size_t{256} << 10;

#if CKPTIO_COPY_CHECKSUM_X86

// XXH3-64 of inputs over 240 bytes with the default secret and seed 0 (xxHash's
// XXH3_hashLong_64b, whose output is fixed by its specification): eight 64-bit accumulators,
// fed 64-byte stripes, each with the secret at 8 bytes further on; after every block of 16
// stripes the accumulators are scrambled with the secret's last 64 bytes. The last stripe is
// the input's last 64 bytes (overlapping the one before), with the secret at its end less 71.
constexpr std::size_t kStripeBytes = 64;
constexpr std::size_t kSecretBytes = sizeof(XXH3_kSecret);  // 192
constexpr std::size_t kSecretAdvance = 8;
constexpr std::size_t kStripesPerBlock = (kSecretBytes - kStripeBytes) / kSecretAdvance;  // 16
constexpr std::size_t kBlockBytes = kStripeBytes * kStripesPerBlock;
constexpr std::size_t kLastStripeSecret = kSecretBytes - kStripeBytes - 7;
constexpr std::size_t kMergeSecret = 11;
constexpr std::size_t kLongInputMinimum = 241;
// Loads run this far ahead of the copy, so that memory keeps more lines in flight.
constexpr std::size_t kPrefetchBytes = 4096;

alignas(64) constexpr std::uint64_t kInitialAccumulators[8] = XXH3_INIT_ACC;

std::uint64_t merge_accumulators(const std::uint64_t* accumulators, std::size_t bytes) noexcept {
  return XXH3_mergeAccs(accumulators, XXH3_kSecret + kMergeSecret, static_cast<std::uint64_t>(bytes) * XXH_PRIME64_1);
}

#define CKPTIO_TARGET_AVX2 __attribute__((target("avx2")))
#define CKPTIO_TARGET_AVX512 __attribute__((target("avx512f")))

// acc[i] += swap(data)[i] + lo32(data ^ key)[i] * hi32(data ^ key)[i], on four lanes.
CKPTIO_TARGET_AVX2 inline __m256i accumulate_avx2(__m256i accumulator, __m256i data, const unsigned char* secret) {
  const __m256i keyed = _mm256_xor_si256(data, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(secret)));
  const __m256i product = _mm256_mul_epu32(keyed, _mm256_shuffle_epi32(keyed, _MM_SHUFFLE(0, 3, 0, 1)));
  const __m256i swapped = _mm256_shuffle_epi32(data, _MM_SHUFFLE(1, 0, 3, 2));
  return _mm256_add_epi64(product, _mm256_add_epi64(accumulator, swapped));
}

// acc = (acc ^ (acc >> 47) ^ key) * PRIME32_1, on four lanes.
CKPTIO_TARGET_AVX2 inline __m256i scramble_avx2(__m256i accumulator, const unsigned char* secret) {
  const __m256i prime = _mm256_set1_epi32(static_cast<int>(XXH_PRIME32_1));
  __m256i mixed = _mm256_xor_si256(accumulator, _mm256_srli_epi64(accumulator, 47));
  mixed = _mm256_xor_si256(mixed, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(secret)));
  const __m256i high = _mm256_shuffle_epi32(mixed, _MM_SHUFFLE(0, 3, 0, 1));
  return _mm256_add_epi64(_mm256_mul_epu32(mixed, prime), _mm256_slli_epi64(_mm256_mul_epu32(high, prime), 32));
}

// Copies and hashes one stripe: two 32-byte halves, each stored and fed to its accumulators.
CKPTIO_TARGET_AVX2 inline void stripe_avx2(__m256i* accumulators, unsigned char* destination,
                                           const unsigned char* source, const unsigned char* secret) {
  _mm_prefetch(reinterpret_cast<const char*>(source + kPrefetchBytes), _MM_HINT_T0);
  const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(source));
  const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(source + 32));
  _mm256_stream_si256(reinterpret_cast<__m256i*>(destination), low);
  _mm256_stream_si256(reinterpret_cast<__m256i*>(destination + 32), high);
  accumulators[0] = accumulate_avx2(accumulators[0], low, secret);
  accumulators[1] = accumulate_avx2(accumulators[1], high, secret + 32);
}

// `destination` aligned to 32 bytes; bytes >= kLongInputMinimum.
CKPTIO_TARGET_AVX2 std::uint64_t copy_and_hash_avx2(unsigned char* destination, const unsigned char* source,
                                                    std::size_t bytes) noexcept {
  const unsigned char* const secret = XXH3_kSecret;
  __m256i acc[2] = {_mm256_load_si256(reinterpret_cast<const __m256i*>(kInitialAccumulators)),
                    _mm256_load_si256(reinterpret_cast<const __m256i*>(kInitialAccumulators + 4))};
  const std::size_t blocks = (bytes - 1) / kBlockBytes;
  std::size_t offset = 0;
  for (std::size_t block = 0; block < blocks; ++block) {
    for (std::size_t s = 0; s < kStripesPerBlock; ++s, offset += kStripeBytes)
      stripe_avx2(acc, destination + offset, source + offset, secret + s * kSecretAdvance);
    acc[0] = scramble_avx2(acc[0], secret + kSecretBytes - kStripeBytes);
    acc[1] = scramble_avx2(acc[1], secret + kSecretBytes - kStripeBytes + 32);
  }
  const std::size_t stripes = ((bytes - 1) - blocks * kBlockBytes) / kStripeBytes;
  for (std::size_t s = 0; s < stripes; ++s, offset += kStripeBytes)
    stripe_avx2(acc, destination + offset, source + offset, secret + s * kSecretAdvance);
  _mm_sfence();
  std::memcpy(destination + offset, source + offset, bytes - offset);  // 1 to 64 bytes
  const unsigned char* const last = source + bytes - kStripeBytes;
  acc[0] =
      accumulate_avx2(acc[0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(last)), secret + kLastStripeSecret);
  acc[1] = accumulate_avx2(acc[1], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(last + 32)),
                           secret + kLastStripeSecret + 32);
  alignas(32) std::uint64_t out[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), acc[0]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 4), acc[1]);
  return merge_accumulators(out, bytes);
}

// GCC 12's AVX-512 intrinsics pass a deliberately undefined vector (_mm512_undefined_epi32)
// as the unused merge source of their unmasked forms, which it then reports as uninitialised
// inside functions compiled for avx512f by attribute.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The same as the AVX2 code, on eight lanes.
CKPTIO_TARGET_AVX512 inline __m512i accumulate_avx512(__m512i accumulator, __m512i data, const unsigned char* secret) {
  const __m512i keyed = _mm512_xor_si512(data, _mm512_loadu_si512(secret));
  const __m512i product =
      _mm512_mul_epu32(keyed, _mm512_shuffle_epi32(keyed, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(0, 3, 0, 1))));
  const __m512i swapped = _mm512_shuffle_epi32(data, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_add_epi64(product, _mm512_add_epi64(accumulator, swapped));
}

CKPTIO_TARGET_AVX512 inline __m512i scramble_avx512(__m512i accumulator, const unsigned char* secret) {
  const __m512i prime = _mm512_set1_epi32(static_cast<int>(XXH_PRIME32_1));
  __m512i mixed = _mm512_xor_si512(accumulator, _mm512_srli_epi64(accumulator, 47));
  mixed = _mm512_xor_si512(mixed, _mm512_loadu_si512(secret));
  const __m512i high = _mm512_shuffle_epi32(mixed, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(0, 3, 0, 1)));
  return _mm512_add_epi64(_mm512_mul_epu32(mixed, prime), _mm512_slli_epi64(_mm512_mul_epu32(high, prime), 32));
}

CKPTIO_TARGET_AVX512 inline __m512i stripe_avx512(__m512i accumulator, unsigned char* destination,
                                                  const unsigned char* source, const unsigned char* secret) {
  _mm_prefetch(reinterpret_cast<const char*>(source + kPrefetchBytes), _MM_HINT_T0);
  const __m512i data = _mm512_loadu_si512(source);
  _mm512_stream_si512(reinterpret_cast<__m512i*>(destination), data);
  return accumulate_avx512(accumulator, data, secret);
}

// `destination` aligned to 64 bytes; bytes >= kLongInputMinimum.
CKPTIO_TARGET_AVX512 std::uint64_t copy_and_hash_avx512(unsigned char* destination, const unsigned char* source,
                                                        std::size_t bytes) noexcept {
  const unsigned char* const secret = XXH3_kSecret;
  __m512i acc = _mm512_load_si512(kInitialAccumulators);
  const std::size_t blocks = (bytes - 1) / kBlockBytes;
  std::size_t offset = 0;
  for (std::size_t block = 0; block < blocks; ++block) {
    for (std::size_t s = 0; s < kStripesPerBlock; ++s, offset += kStripeBytes)
      acc = stripe_avx512(acc, destination + offset, source + offset, secret + s * kSecretAdvance);
    acc = scramble_avx512(acc, secret + kSecretBytes - kStripeBytes);
  }
  const std::size_t stripes = ((bytes - 1) - blocks * kBlockBytes) / kStripeBytes;
  for (std::size_t s = 0; s < stripes; ++s, offset += kStripeBytes)
    acc = stripe_avx512(acc, destination + offset, source + offset, secret + s * kSecretAdvance);
  _mm_sfence();
  std::memcpy(destination + offset, source + offset, bytes - offset);  // 1 to 64 bytes
  acc = accumulate_avx512(acc, _mm512_loadu_si512(source + bytes - kStripeBytes), secret + kLastStripeSecret);
  alignas(64) std::uint64_t out[8];
  _mm512_store_si512(out, acc);
  return merge_accumulators(out, bytes);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

CopyChecksumCode widest_code() noexcept {
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the operating system saves the vector registers.
  if (__builtin_cpu_supports("avx512f")) return CopyChecksumCode::kAvx512;
  if (__builtin_cpu_supports("avx2")) return CopyChecksumCode::kAvx2;
  return CopyChecksumCode::kPortable;
}

#endif  // CKPTIO_COPY_CHECKSUM_X86

std::uint64_t copy_then_hash(void* destination, const void* source, std::size_t bytes) noexcept {
  if (bytes > 0) copy_streaming(destination, source, bytes);  // an empty piece may have no memory at all
  return xxh3_64(source, bytes);
}

}  // namespace

bool copy_checksum_code_runs(CopyChecksumCode code) noexcept {
  if (code == CopyChecksumCode::kPortable) return true;
#if CKPTIO_COPY_CHECKSUM_X86
  static const CopyChecksumCode widest = widest_code();
  return static_cast<int>(code) <= static_cast<int>(widest);
#else
  return false;
#endif
}

std::uint64_t copy_and_xxh3_64(CopyChecksumCode code, void* destination, const void* source,
                               std::size_t bytes) noexcept {
#if CKPTIO_COPY_CHECKSUM_X86
  if (bytes >= kLongInputMinimum) {
    auto* to = static_cast<unsigned char*>(destination);
    const auto* from = static_cast<const unsigned char*>(source);
    if (code == CopyChecksumCode::kAvx512) return copy_and_hash_avx512(to, from, bytes);
    if (code == CopyChecksumCode::kAvx2) return copy_and_hash_avx2(to, from, bytes);
  }
#else
  (void)code;
#endif
  return copy_then_hash(destination, source, bytes);
}

std::uint64_t copy_and_xxh3_64(void* destination, const void* source, std::size_t bytes) noexcept {
#if CKPTIO_COPY_CHECKSUM_X86
  static const CopyChecksumCode widest = widest_code();
  const auto alignment = reinterpret_cast<std::uintptr_t>(destination);
  if (bytes >= kOnePassMinimum) {
    if (widest == CopyChecksumCode::kAvx512 && alignment % 64 == 0)
      return copy_and_xxh3_64(CopyChecksumCode::kAvx512, destination, source, bytes);
    if (widest != CopyChecksumCode::kPortable && alignment % 32 == 0)
      return copy_and_xxh3_64(CopyChecksumCode::kAvx2, destination, source, bytes);
  }
#endif
  return copy_then_hash(destination, source, bytes);
}

}  // namespace ckptio::detail
