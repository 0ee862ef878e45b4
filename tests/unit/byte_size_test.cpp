// Hugging Face's size units for --max-shard-size, and the shard file names.
#include <gtest/gtest.h>

#include "ckptio/error.hpp"
#include "ckptio/safetensors.hpp"

namespace ckptio {
namespace {

TEST(ByteSize, HuggingFaceUnits) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("5GiB"), 5ull << 30);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000ull);
  EXPECT_EQ(parse_byte_size("500mib"), 500ull << 20);
  EXPECT_EQ(parse_byte_size("10KB"), 10'000ull);
  EXPECT_EQ(parse_byte_size("2TiB"), 2ull << 40);
  EXPECT_EQ(parse_byte_size("100B"), 100ull);
  EXPECT_EQ(parse_byte_size("4096"), 4096ull);
  EXPECT_EQ(parse_byte_size("1.5GB"), 1'500'000'000ull);
}

TEST(ByteSize, RejectsMalformedSizes) {
  for (const char* bad : {"", "GB", "5XB", "-1GB", "0", "1.2.3MB", "5 G B x"}) {
    EXPECT_THROW(parse_byte_size(bad), UsageError) << bad;
  }
  try {
    parse_byte_size("5XB");
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "invalid size '5XB': unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  }
}

TEST(ByteSize, ShardFileNames) {
  EXPECT_EQ(shard_file_name("model", 0, 3), "model-00001-of-00003.safetensors");
  EXPECT_EQ(shard_file_name("ema", 11, 12), "ema-00012-of-00012.safetensors");
}

}  // namespace
}  // namespace ckptio
