// The CUDA memory layer of a build without CUDA: ordinary host memory, and device copies
// refused with a clear error.
#include "ckptio/error.hpp"
#include "core/host_memory.hpp"
#include "cuda/memory.hpp"

namespace ckptio::detail::cuda {

namespace {

[[noreturn]] void no_cuda() {
  throw UsageError("device memory needs ckptio built with CUDA (configure with -DCKPTIO_WITH_CUDA=ON)");
}

}  // namespace

bool device_supported() noexcept { return false; }

void* alloc_host(std::size_t bytes, bool& pinned, bool huge_pages) {
  pinned = false;
  return map_host_pages(bytes, huge_pages);
}

void free_host(void* pointer, std::size_t bytes, bool) noexcept { unmap_host_pages(pointer, bytes); }

void copy_device_to_host(void*, const void*, std::size_t, int) { no_cuda(); }
void copy_host_to_device(void*, const void*, std::size_t, int) { no_cuda(); }
void* alloc_device(std::size_t, int) { no_cuda(); }
void free_device(void*, int) noexcept {}

}  // namespace ckptio::detail::cuda
