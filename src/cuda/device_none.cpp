#include "cuda/device.hpp"

namespace ckptio::detail::cuda {

int device_count() noexcept { return 0; }

}  // namespace ckptio::detail::cuda
