#include "known_values.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace ckptio::interop {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

template <typename T>
void append_bytes(std::vector<std::uint8_t>& bytes, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::uint8_t raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));  // the machine is little-endian, as the format is
  bytes.insert(bytes.end(), raw, raw + sizeof(T));
}

double decode_f16(std::uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
  return (bits & 0x8000) ? -magnitude : magnitude;
}

double decode_bf16(std::uint16_t bits) {
  const std::uint32_t widened = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

double decode_f8_e4m3(std::uint8_t bits) {
  const int exponent = (bits >> 3) & 0xF;
  const int mantissa = bits & 0x7;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -9) : std::ldexp(8 + mantissa, exponent - 10);
  return (bits & 0x80) ? -magnitude : magnitude;
}

double decode_f8_e5m2(std::uint8_t bits) {
  const int exponent = (bits >> 2) & 0x1F;
  const int mantissa = bits & 0x3;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -16) : std::ldexp(4 + mantissa, exponent - 17);
  return (bits & 0x80) ? -magnitude : magnitude;
}

// Bit patterns never NaN or infinite: an all-ones exponent gets its top bit cleared.
std::uint16_t finite_f16_bits(std::uint64_t random) {
  auto bits = static_cast<std::uint16_t>(random);
  if (((bits >> 10) & 0x1F) == 0x1F) bits ^= 0x4000;
  return bits;
}
std::uint16_t finite_bf16_bits(std::uint64_t random) {
  auto bits = static_cast<std::uint16_t>(random);
  if (((bits >> 7) & 0xFF) == 0xFF) bits ^= 0x4000;
  return bits;
}
std::uint8_t finite_e4m3_bits(std::uint64_t random) {
  auto bits = static_cast<std::uint8_t>(random);
  if ((bits & 0x7F) == 0x7F) bits ^= 0x01;  // E4M3 has no infinity; only S.1111.111 is NaN
  return bits;
}
std::uint8_t finite_e5m2_bits(std::uint64_t random) {
  auto bits = static_cast<std::uint8_t>(random);
  if (((bits >> 2) & 0x1F) == 0x1F) bits ^= 0x40;
  return bits;
}

template <typename T>
std::vector<T> integer_edges() {
  using limits = std::numeric_limits<T>;
  if constexpr (std::is_signed_v<T>) {
    return {
        0, -1, 1, limits::min(), limits::max(), static_cast<T>(limits::min() + 1), static_cast<T>(limits::max() - 1)};
  } else {
    return {0, 1, limits::max(), static_cast<T>(limits::max() - 1), static_cast<T>(limits::max() / 2 + 1)};
  }
}

// Appends element `index`: an edge case while there are some left, else a pattern value.
template <typename T>
void append_integer(KnownValues& known, std::int64_t index, std::uint64_t random) {
  const auto edges = integer_edges<T>();
  const T value =
      index < static_cast<std::int64_t>(edges.size()) ? edges[static_cast<std::size_t>(index)] : static_cast<T>(random);
  append_bytes(known.bytes, value);
  known.values.push_back(value);
}

template <typename Bits, typename Decode>
void append_bit_pattern(KnownValues& known, std::int64_t index, const std::vector<Bits>& edges, Bits random_bits,
                        Decode decode) {
  const Bits bits =
      index < static_cast<std::int64_t>(edges.size()) ? edges[static_cast<std::size_t>(index)] : random_bits;
  append_bytes(known.bytes, bits);
  known.values.push_back(decode(bits));
}

void append_element(KnownValues& known, DType dtype, std::int64_t index, std::uint64_t random) {
  switch (dtype) {
    case DType::F64: {
      static const std::vector<double> edges = {0.0,
                                                -0.0,
                                                1.0,
                                                -2.5,
                                                std::numeric_limits<double>::max(),
                                                std::numeric_limits<double>::denorm_min(),
                                                std::numeric_limits<double>::min(),
                                                0.1};
      const double value = index < static_cast<std::int64_t>(edges.size())
                               ? edges[static_cast<std::size_t>(index)]
                               : static_cast<double>(static_cast<std::int64_t>(random)) / 3.0;
      append_bytes(known.bytes, value);
      known.values.push_back(value);
      return;
    }
    case DType::F32: {
      static const std::vector<float> edges = {0.0f,
                                               -0.0f,
                                               1.0f,
                                               -2.5f,
                                               std::numeric_limits<float>::max(),
                                               std::numeric_limits<float>::denorm_min(),
                                               std::numeric_limits<float>::min(),
                                               0.1f};
      const float value = index < static_cast<std::int64_t>(edges.size())
                              ? edges[static_cast<std::size_t>(index)]
                              : static_cast<float>(static_cast<std::int32_t>(random)) / 7.0f;
      append_bytes(known.bytes, value);
      known.values.push_back(static_cast<double>(value));
      return;
    }
    // 0, -0, 1, -2.5, largest finite, smallest subnormal, smallest normal, 1/3 rounded.
    case DType::F16:
      return append_bit_pattern<std::uint16_t>(known, index,
                                               {0x0000, 0x8000, 0x3C00, 0xC100, 0x7BFF, 0x0001, 0x0400, 0x3555},
                                               finite_f16_bits(random), decode_f16);
    case DType::BF16:
      return append_bit_pattern<std::uint16_t>(known, index,
                                               {0x0000, 0x8000, 0x3F80, 0xC020, 0x7F7F, 0x0001, 0x0080, 0x3EAB},
                                               finite_bf16_bits(random), decode_bf16);
    // 0, -0, 1, -2.5, largest finite (448 / 57344), smallest subnormal, smallest normal, -largest.
    case DType::F8_E4M3:
      return append_bit_pattern<std::uint8_t>(known, index, {0x00, 0x80, 0x38, 0xC2, 0x7E, 0x01, 0x08, 0xFE},
                                              finite_e4m3_bits(random), decode_f8_e4m3);
    case DType::F8_E5M2:
      return append_bit_pattern<std::uint8_t>(known, index, {0x00, 0x80, 0x3C, 0xC1, 0x7B, 0x01, 0x04, 0xFB},
                                              finite_e5m2_bits(random), decode_f8_e5m2);
    case DType::I64:
      return append_integer<std::int64_t>(known, index, random);
    case DType::I32:
      return append_integer<std::int32_t>(known, index, random);
    case DType::I16:
      return append_integer<std::int16_t>(known, index, random);
    case DType::I8:
      return append_integer<std::int8_t>(known, index, random);
    case DType::U64:
      return append_integer<std::uint64_t>(known, index, random);
    case DType::U32:
      return append_integer<std::uint32_t>(known, index, random);
    case DType::U16:
      return append_integer<std::uint16_t>(known, index, random);
    case DType::U8:
      return append_integer<std::uint8_t>(known, index, random);
    case DType::BOOL: {
      const bool value = (random & 1) != 0;
      known.bytes.push_back(value ? 1 : 0);
      known.values.push_back(value);
      return;
    }
  }
  throw std::logic_error("unknown dtype");
}

}  // namespace

KnownValues make_known_values(DType dtype, std::int64_t elements, std::uint64_t seed) {
  KnownValues known;
  known.values = nlohmann::json::array();
  for (std::int64_t index = 0; index < elements; ++index) {
    append_element(known, dtype, index, splitmix64(seed * 1000003ULL + static_cast<std::uint64_t>(index)));
  }
  return known;
}

}  // namespace ckptio::interop
