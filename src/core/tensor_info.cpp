#include "ckptio/tensor_info.hpp"

#include "core/piece_math.hpp"

namespace ckptio {

const char* to_string(TensorFormat format) noexcept {
  switch (format) {
    case TensorFormat::Container:
      return "container";
    case TensorFormat::Safetensors:
      return "safetensors";
    case TensorFormat::Torch:
      return "torch";
  }
  return "?";
}

std::int64_t TensorInfo::elements() const { return detail::element_count(shape); }

}  // namespace ckptio
