// CUDA device queries. The only layer that includes CUDA headers (in device.cpp).
#pragma once

namespace ckptio::detail::cuda {

// Number of usable CUDA devices; 0 when CUDA is not built in or when the driver reports
// any error (no GPU, insufficient driver, ...).
int device_count() noexcept;

}  // namespace ckptio::detail::cuda
