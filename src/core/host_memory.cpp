#include "core/host_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <new>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace ckptio::detail {

namespace {

std::size_t round_up(std::size_t bytes, std::size_t unit) { return (bytes + unit - 1) / unit * unit; }

std::size_t mapped_bytes(std::size_t bytes) { return round_up(bytes == 0 ? 1 : bytes, kHugePageBytes); }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL
#endif

constexpr std::size_t kStreamingMinimum = std::size_t{256} << 10;

}  // namespace

void* map_host_pages(std::size_t bytes, bool huge_pages) {
  const std::size_t size = mapped_bytes(bytes);
  // Map one huge page more than needed and trim both ends to a huge-page boundary.
  const std::size_t span = size + kHugePageBytes;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePageBytes);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + span;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  void* pointer = reinterpret_cast<void*>(aligned);
  if (huge_pages) ::madvise(pointer, size, MADV_HUGEPAGE);  // a hint: without THP it fails, harmlessly
  return pointer;
}

void unmap_host_pages(void* pointer, std::size_t bytes) noexcept {
  if (pointer) ::munmap(pointer, mapped_bytes(bytes));
}

void fault_in_pages(void* pointer, std::size_t bytes) noexcept {
  if (!pointer || bytes == 0) return;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<std::uintptr_t>(pointer) / page * page;
  const std::size_t length = round_up(reinterpret_cast<std::uintptr_t>(pointer) + bytes - start, page);
  if (::madvise(reinterpret_cast<void*>(start), length, MADV_POPULATE_WRITE) == 0) return;
  // Older kernel: one write per page. Adding zero keeps the contents of present pages.
  auto* bytes_in = static_cast<volatile unsigned char*>(pointer);
  for (std::size_t offset = 0; offset < bytes; offset += page) bytes_in[offset] = bytes_in[offset] + 0;
  bytes_in[bytes - 1] = bytes_in[bytes - 1] + 0;
}

void copy_streaming(void* destination, const void* source, std::size_t bytes) noexcept {
#if defined(__x86_64__)
  if (bytes >= kStreamingMinimum && reinterpret_cast<std::uintptr_t>(destination) % 16 == 0) {
    auto* out = static_cast<__m128i*>(destination);
    const auto* in = static_cast<const __m128i*>(source);
    const std::size_t blocks = bytes / 64;
    for (std::size_t i = 0; i < blocks; ++i, out += 4, in += 4) {
      const __m128i a = _mm_loadu_si128(in);
      const __m128i b = _mm_loadu_si128(in + 1);
      const __m128i c = _mm_loadu_si128(in + 2);
      const __m128i d = _mm_loadu_si128(in + 3);
      _mm_stream_si128(out, a);
      _mm_stream_si128(out + 1, b);
      _mm_stream_si128(out + 2, c);
      _mm_stream_si128(out + 3, d);
    }
    _mm_sfence();
    const std::size_t done = blocks * 64;
    std::memcpy(static_cast<std::byte*>(destination) + done, static_cast<const std::byte*>(source) + done,
                bytes - done);
    return;
  }
#endif
  std::memcpy(destination, source, bytes);
}

}  // namespace ckptio::detail
