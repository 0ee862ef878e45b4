#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "formats/float_convert.hpp"

namespace ckptio::detail {
namespace {

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
std::uint32_t to_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(FloatConvert, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808001)), 0x3F81);  // above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F807FFF)), 0x3F80);  // below the tie
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
}

TEST(FloatConvert, Bf16SpecialValues) {
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
  EXPECT_EQ(f32_to_bf16(from_bits(0xFF800001)), 0x7FC0);              // a negative signalling NaN
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // overflow to Inf
  EXPECT_EQ(f32_to_bf16(from_bits(0x7F7F7FFF)), 0x7F7F);              // largest that stays finite
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000)), 0x0001);              // subnormal, exact
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000)), 0x0000);              // subnormal tie to even
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000)), 0x0002);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00000001)), 0x0000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
  EXPECT_EQ(to_bits(bf16_to_f32(0x0001)), 0x00010000u);
  EXPECT_EQ(bf16_to_f32(0xFF80), -std::numeric_limits<float>::infinity());
}

TEST(FloatConvert, F16KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.1f), 0x2E66);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // the tie above the largest half rounds to Inf
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xFC00);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie, even stays
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, odd rounds up
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(FloatConvert, F16SpecialValuesAndSubnormals) {
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::quiet_NaN()), 0xFE00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);     // tie to even: zero
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);     // above the tie
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);     // tie, odd rounds up
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(from_bits(0x00000001)), 0x0000);     // an f32 subnormal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
}

TEST(FloatConvert, EveryHalfAndBf16RoundTripsThroughF32) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto b = static_cast<std::uint16_t>(h);
    const bool f16_nan = (b & 0x7C00) == 0x7C00 && (b & 0x03FF);
    if (!f16_nan) {
      ASSERT_EQ(f32_to_f16(f16_to_f32(b)), b) << std::hex << h;
    }
    const bool bf16_nan = (b & 0x7F80) == 0x7F80 && (b & 0x007F);
    if (!bf16_nan) {
      ASSERT_EQ(f32_to_bf16(bf16_to_f32(b)), b) << std::hex << h;
    }
  }
}

TEST(FloatConvert, ConvertElementsBetweenFloatTypes) {
  const float in[] = {1.0f, -0.5f, 65520.0f, std::ldexp(1.0f, -25)};
  std::uint16_t half[4];
  convert_elements(in, DType::F32, half, DType::F16, 4);
  EXPECT_EQ(half[0], 0x3C00);
  EXPECT_EQ(half[1], 0xB800);
  EXPECT_EQ(half[2], 0x7C00);
  EXPECT_EQ(half[3], 0x0000);
  std::uint16_t bf[4];
  convert_elements(half, DType::F16, bf, DType::BF16, 4);
  EXPECT_EQ(bf[0], 0x3F80);
  EXPECT_EQ(bf[2], 0x7F80);
  double d[4];
  convert_elements(bf, DType::BF16, d, DType::F64, 4);
  EXPECT_EQ(d[1], -0.5);
  EXPECT_TRUE(dtype_convertible(DType::F32, DType::BF16));
  EXPECT_FALSE(dtype_convertible(DType::F32, DType::I32));
  EXPECT_FALSE(dtype_convertible(DType::F8_E4M3, DType::F32));
}

}  // namespace
}  // namespace ckptio::detail
