#include "cuda/memory.hpp"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "ckptio/error.hpp"
#include "core/host_memory.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/device.hpp"

namespace ckptio::detail::cuda {

namespace {

// One non-blocking stream per device, created on first use.
cudaStream_t copy_stream(int device) {
  static std::mutex mutex;
  static std::unordered_map<int, cudaStream_t> streams;
  std::lock_guard lock(mutex);
  auto it = streams.find(device);
  if (it != streams.end()) return it->second;
  cudaStream_t stream = nullptr;
  check(cudaSetDevice(device), "select device " + std::to_string(device));
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "create a copy stream");
  streams.emplace(device, stream);
  return stream;
}

void copy(void* dst, const void* src, std::size_t bytes, int device, cudaMemcpyKind kind, const char* what) {
  if (bytes == 0) return;
  check(cudaSetDevice(device), "select device " + std::to_string(device));
  cudaStream_t stream = copy_stream(device);
  check(cudaMemcpyAsync(dst, src, bytes, kind, stream), std::string(what) + " of " + std::to_string(bytes) + " bytes");
  check(cudaStreamSynchronize(stream), std::string("wait for ") + what);
}

}  // namespace

bool device_supported() noexcept { return true; }

void* alloc_host(std::size_t bytes, bool& pinned, bool huge_pages) {
  pinned = false;
  if (bytes == 0) bytes = 1;
  if (device_count() > 0) {
    void* p = nullptr;
    if (cudaMallocHost(&p, bytes) == cudaSuccess) {
      pinned = true;
      return p;
    }
    cudaGetLastError();
  }
  return map_host_pages(bytes, huge_pages);
}

void free_host(void* pointer, std::size_t bytes, bool pinned) noexcept {
  if (!pointer) return;
  if (pinned)
    cudaFreeHost(pointer);
  else
    unmap_host_pages(pointer, bytes);
}

void copy_device_to_host(void* host, const void* device_pointer, std::size_t bytes, int device) {
  copy(host, device_pointer, bytes, device, cudaMemcpyDeviceToHost, "device-to-host copy");
}

void copy_host_to_device(void* device_pointer, const void* host, std::size_t bytes, int device) {
  copy(device_pointer, host, bytes, device, cudaMemcpyHostToDevice, "host-to-device copy");
}

void* alloc_device(std::size_t bytes, int device) {
  void* p = nullptr;
  check(cudaSetDevice(device), "select device " + std::to_string(device));
  check(cudaMalloc(&p, bytes ? bytes : 1), "allocate " + std::to_string(bytes) + " bytes of device memory");
  return p;
}

void free_device(void* pointer, int device) noexcept {
  if (!pointer) return;
  cudaSetDevice(device);
  cudaFree(pointer);
}

}  // namespace ckptio::detail::cuda
