// ckptio: element types, named and sized as in safetensors.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ckptio {

// The safetensors dtypes with a fixed byte size. The enumerator order is ckptio's own;
// see formats code for the safetensors writer's ordering.
enum class DType {
  F64,
  F32,
  F16,
  BF16,
  F8_E4M3,
  F8_E5M2,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  BOOL,
};

inline constexpr DType kAllDTypes[] = {DType::F64,     DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                                       DType::F8_E5M2, DType::I64, DType::I32, DType::I16,  DType::I8,
                                       DType::U64,     DType::U32, DType::U16, DType::U8,   DType::BOOL};

// Size of one element in bytes.
std::size_t dtype_size(DType dtype) noexcept;

// The safetensors name: "F32", "BF16", "F8_E4M3", "BOOL", ...
std::string_view dtype_name(DType dtype) noexcept;

// Parses a safetensors dtype name (exact, case-sensitive). nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view name) noexcept;

// True for F64, F32, F16, BF16, F8_E4M3, F8_E5M2.
bool dtype_is_floating(DType dtype) noexcept;

}  // namespace ckptio
