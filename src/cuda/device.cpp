#include "cuda/device.hpp"

#include <cuda_runtime_api.h>

namespace ckptio::detail::cuda {

int device_count() noexcept {
  int count = 0;
  // Any error means "no usable GPU" (on a machine without one the driver answers
  // cudaErrorInsufficientDriver or cudaErrorNoDevice).
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace ckptio::detail::cuda
