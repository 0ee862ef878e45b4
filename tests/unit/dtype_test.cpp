#include <gtest/gtest.h>

#include "ckptio/dtype.hpp"
#include "ckptio/error.hpp"

namespace ckptio {
namespace {

TEST(DType, SizesAndNamesMatchSafetensors) {
  const std::pair<DType, std::pair<const char*, std::size_t>> expected[] = {
      {DType::F64, {"F64", 8}},   {DType::F32, {"F32", 4}},         {DType::F16, {"F16", 2}},
      {DType::BF16, {"BF16", 2}}, {DType::F8_E4M3, {"F8_E4M3", 1}}, {DType::F8_E5M2, {"F8_E5M2", 1}},
      {DType::I64, {"I64", 8}},   {DType::I32, {"I32", 4}},         {DType::I16, {"I16", 2}},
      {DType::I8, {"I8", 1}},     {DType::U64, {"U64", 8}},         {DType::U32, {"U32", 4}},
      {DType::U16, {"U16", 2}},   {DType::U8, {"U8", 1}},           {DType::BOOL, {"BOOL", 1}}};
  for (const auto& [dtype, info] : expected) {
    EXPECT_EQ(dtype_name(dtype), info.first);
    EXPECT_EQ(dtype_size(dtype), info.second) << info.first;
    EXPECT_EQ(parse_dtype(info.first), dtype);
  }
  EXPECT_EQ(std::size(kAllDTypes), std::size(expected));
}

TEST(DType, ParseRejectsUnknownAndWrongCase) {
  EXPECT_FALSE(parse_dtype("f32"));
  EXPECT_FALSE(parse_dtype("F4"));
  EXPECT_FALSE(parse_dtype(""));
}

TEST(DType, FloatingTypes) {
  EXPECT_TRUE(dtype_is_floating(DType::BF16));
  EXPECT_TRUE(dtype_is_floating(DType::F8_E5M2));
  EXPECT_FALSE(dtype_is_floating(DType::I64));
  EXPECT_FALSE(dtype_is_floating(DType::BOOL));
}

TEST(Errors, ThrowErrorKeepsTheKind) {
  EXPECT_THROW(throw_error(ErrorKind::Usage, "x"), UsageError);
  EXPECT_THROW(throw_error(ErrorKind::Mismatch, "x"), MismatchError);
  EXPECT_THROW(throw_error(ErrorKind::Format, "x"), FormatError);
  EXPECT_THROW(throw_error(ErrorKind::Io, "x"), IoError);
  EXPECT_THROW(throw_error(ErrorKind::Integrity, "x"), IntegrityError);
  EXPECT_THROW(throw_error(ErrorKind::Locked, "x"), LockedError);
  try {
    throw_error(ErrorKind::Io, "disk on fire");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
}

}  // namespace
}  // namespace ckptio
