#include "formats/float_convert.hpp"

#include <cstring>

namespace ckptio::detail {
namespace {

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

bool is_convertible_float(DType d) { return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16; }

double load_as_double(const unsigned char* p, DType d) {
  switch (d) {
    case DType::F64: {
      double v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case DType::F32: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case DType::F16: {
      std::uint16_t b;
      std::memcpy(&b, p, sizeof b);
      return f16_to_f32(b);
    }
    default: {  // BF16
      std::uint16_t b;
      std::memcpy(&b, p, sizeof b);
      return bf16_to_f32(b);
    }
  }
}

void store_from_double(double value, unsigned char* p, DType d) {
  switch (d) {
    case DType::F64:
      std::memcpy(p, &value, sizeof value);
      return;
    case DType::F32: {
      const float v = static_cast<float>(value);
      std::memcpy(p, &v, sizeof v);
      return;
    }
    case DType::F16: {
      const std::uint16_t b = f32_to_f16(static_cast<float>(value));
      std::memcpy(p, &b, sizeof b);
      return;
    }
    default: {
      const std::uint16_t b = f32_to_bf16(static_cast<float>(value));
      std::memcpy(p, &b, sizeof b);
      return;
    }
  }
}

}  // namespace

std::uint16_t f32_to_bf16(float value) noexcept {
  const std::uint32_t x = bits_of(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN, as PyTorch rounds it
  const std::uint32_t bias = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + bias) >> 16);
}

float bf16_to_f32(std::uint16_t bits) noexcept { return float_of(static_cast<std::uint32_t>(bits) << 16); }

std::uint16_t f32_to_f16(float value) noexcept {
  const std::uint32_t bits = bits_of(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t x = bits & 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00;   // NaN
  if (x >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 (and Inf) rounds to Inf
  if (x <= 0x33000000u) return sign;           // <= 2^-25 rounds to zero (ties to even)
  const int exponent = static_cast<int>(x >> 23);
  if (exponent < 113) {  // below 2^-14: a subnormal half
    const std::uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
    const int shift = 126 - exponent;  // 14..24
    std::uint32_t q = mantissa >> shift;
    const std::uint32_t rem = mantissa & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return sign | static_cast<std::uint16_t>(q);
  }
  std::uint32_t q = (static_cast<std::uint32_t>(exponent - 112) << 10) | ((x & 0x7fffffu) >> 13);
  const std::uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
  return sign | static_cast<std::uint16_t>(q);
}

float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return float_of(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return float_of(sign);
  int e = 113;  // normalise the subnormal
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return float_of(sign | (static_cast<std::uint32_t>(e) << 23) | ((mantissa & 0x3ffu) << 13));
}

bool dtype_convertible(DType from, DType to) noexcept {
  return from == to || (is_convertible_float(from) && is_convertible_float(to));
}

void convert_elements(const void* in, DType from, void* out, DType to, std::size_t count) {
  if (from == to) {
    if (in != out) std::memmove(out, in, count * dtype_size(from));
    return;
  }
  const auto* src = static_cast<const unsigned char*>(in);
  auto* dst = static_cast<unsigned char*>(out);
  const std::size_t in_size = dtype_size(from);
  const std::size_t out_size = dtype_size(to);
  if (from == DType::F32 && to == DType::BF16) {
    for (std::size_t i = 0; i < count; ++i) {
      float v;
      std::memcpy(&v, src + 4 * i, 4);
      const std::uint16_t b = f32_to_bf16(v);
      std::memcpy(dst + 2 * i, &b, 2);
    }
    return;
  }
  for (std::size_t i = 0; i < count; ++i)
    store_from_double(load_as_double(src + in_size * i, from), dst + out_size * i, to);
}

}  // namespace ckptio::detail
