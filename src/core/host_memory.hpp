// Large host buffers that are cheap to fill: anonymous mappings aligned to 2 MiB with a
// transparent-huge-page hint, faulted in up front, and a streaming copy into them.
#pragma once

#include <cstddef>

namespace ckptio::detail {

// Size of the pages map_host_pages aligns to (the usual transparent huge page).
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// An anonymous private mapping of at least `bytes` (rounded up to kHugePageBytes), aligned to
// kHugePageBytes. With `huge_pages` it is advised MADV_HUGEPAGE, so that the kernel may back
// it with huge pages (fewer faults and TLB misses) where transparent huge pages are in
// "madvise" or "always" mode; faulting in huge pages can also be slower (zeroing 2 MiB at a
// time, compaction; measured in docs/PERFORMANCE.md). Not faulted in: see fault_in_pages.
// Throws std::bad_alloc when it cannot map.
void* map_host_pages(std::size_t bytes, bool huge_pages);
// Unmaps what map_host_pages(bytes) returned (the same `bytes`).
void unmap_host_pages(void* pointer, std::size_t bytes) noexcept;

// Faults in every page of [pointer, pointer + bytes) for writing, in one system call
// (MADV_POPULATE_WRITE) where the kernel has it, else by writing one byte per page. Afterwards
// writes into the range take no page faults. Does not change the contents of pages already
// present; fresh pages read as zero.
void fault_in_pages(void* pointer, std::size_t bytes) noexcept;

// memcpy for large copies into memory that will not be read again soon: non-temporal
// (cache-bypassing) stores on x86-64 for copies of at least 256 KiB with a 16-byte aligned
// destination, memcpy otherwise. Ends with a store fence.
void copy_streaming(void* destination, const void* source, std::size_t bytes) noexcept;

}  // namespace ckptio::detail
