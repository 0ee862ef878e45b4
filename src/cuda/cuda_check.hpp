// CUDA runtime errors as exceptions: the one check() of the CUDA code (CUDA builds only).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "ckptio/error.hpp"

namespace ckptio::detail::cuda {

// Throws IoError "CUDA: <what>: <error name> (<error text>)" unless rc is cudaSuccess.
inline void check(cudaError_t rc, const std::string& what) {
  if (rc == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky error of a failed call
  throw IoError("CUDA: " + what + ": " + cudaGetErrorName(rc) + " (" + cudaGetErrorString(rc) + ")");
}

}  // namespace ckptio::detail::cuda
