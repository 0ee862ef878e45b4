// Host <-> device copies and page-locked host memory for shards that live in CUDA device
// memory. Declared for every build; without CUDA, device_supported() is false, the copies
// throw UsageError and pinned allocations fall back to ordinary memory.
#pragma once

#include <cstddef>

namespace ckptio::detail::cuda {

// True when ckptio was built with CUDA (whether or not a GPU is present).
bool device_supported() noexcept;

// Page-locked host memory when CUDA is built in and a device is usable (faster and
// asynchronous DMA), otherwise pages of map_host_pages(bytes, huge_pages) (core/host_memory.hpp:
// 2 MiB aligned; not yet faulted in). free_host must get what alloc_host gave, with the same
// `bytes` and `pinned` answer.
void* alloc_host(std::size_t bytes, bool& pinned, bool huge_pages = false);
void free_host(void* pointer, std::size_t bytes, bool pinned) noexcept;

// Copies `bytes` between device memory on `device` and host memory, on a stream of the
// library's own (so that it does not serialise with the application's default stream),
// and waits for the copy. Throw IoError naming the CUDA error.
void copy_device_to_host(void* host, const void* device_pointer, std::size_t bytes, int device);
void copy_host_to_device(void* device_pointer, const void* host, std::size_t bytes, int device);

// Device memory, for tests and benchmarks.
void* alloc_device(std::size_t bytes, int device);
void free_device(void* pointer, int device) noexcept;

}  // namespace ckptio::detail::cuda
