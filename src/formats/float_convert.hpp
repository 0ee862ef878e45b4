// Conversions between the floating-point dtypes that exports and loads may ask for.
// Rounding is to nearest, ties to even; overflow gives infinity; NaN stays NaN (as the
// canonical quiet NaN PyTorch produces: 0x7FC0 for bfloat16, sign|0x7E00 for float16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ckptio/dtype.hpp"

namespace ckptio::detail {

std::uint16_t f32_to_bf16(float value) noexcept;
float bf16_to_f32(std::uint16_t bits) noexcept;
std::uint16_t f32_to_f16(float value) noexcept;
float f16_to_f32(std::uint16_t bits) noexcept;

// True when `from` can be converted to `to` by convert_elements: equal dtypes, or both
// of F64, F32, F16, BF16.
bool dtype_convertible(DType from, DType to) noexcept;

// Converts `count` elements from `in` (dtype `from`) to `out` (dtype `to`). The dtypes must
// be convertible. in and out must not overlap unless from == to.
void convert_elements(const void* in, DType from, void* out, DType to, std::size_t count);

}  // namespace ckptio::detail
