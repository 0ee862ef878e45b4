// The command-line tool's own helpers (not library API): size units, exit codes, and how an
// input path is recognised.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "byte_size.hpp"
#include "ckptio/error.hpp"
#include "exit_codes.hpp"
#include "input_paths.hpp"

namespace ckptio::tool {
namespace {

namespace fs = std::filesystem;

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
    FAIL() << "5XB was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "invalid size '5XB': unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  }
}

TEST(ExitCodes, ByErrorKind) {
  EXPECT_EQ(exit_code_for(ErrorKind::Format), kExitBadInput);
  EXPECT_EQ(exit_code_for(ErrorKind::Integrity), kExitBadInput);
  EXPECT_EQ(exit_code_for(ErrorKind::Mismatch), kExitBadInput);
  EXPECT_EQ(exit_code_for(ErrorKind::Generic), kExitBadInput);
  EXPECT_EQ(exit_code_for(ErrorKind::Usage), kExitUsage);
  EXPECT_EQ(exit_code_for(ErrorKind::Io), kExitIo);
  EXPECT_EQ(exit_code_for(ErrorKind::Locked), kExitIo);
  EXPECT_EQ(kExitBadInput, 1);
  EXPECT_EQ(kExitUsage, 2);
  EXPECT_EQ(kExitIo, 3);
}

TEST(ExitCodes, DescribeFailure) {
  EXPECT_EQ(describe_failure(ckptio::LockedError("held")).exit_code, kExitIo);
  EXPECT_EQ(describe_failure(ckptio::UsageError("bad")).message, "bad");
  EXPECT_EQ(
      describe_failure(fs::filesystem_error("scan", std::make_error_code(std::errc::permission_denied))).exit_code,
      kExitIo);
  EXPECT_EQ(describe_failure(std::runtime_error("other")).exit_code, kExitBadInput);
}

class InputPaths : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ckptio-tool-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path file(const std::string& name, const std::string& bytes) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  fs::path dir_;
};

const std::string kHdf5Signature("\x89HDF\r\n\x1a\n", 8);

TEST_F(InputPaths, TorchInputsByExtensionOrZipSignature) {
  EXPECT_TRUE(is_torch_input(file("a/b.pt", "anything")));
  EXPECT_TRUE(is_torch_input(file("B.PTH", "anything")));
  EXPECT_TRUE(is_torch_input(file("weights.bin", std::string("PK\x03\x04", 4) + "rest")));
  EXPECT_FALSE(is_torch_input(file("b.safetensors", "anything")));
  EXPECT_FALSE(is_torch_input(file("pt", "anything")));
  EXPECT_FALSE(is_torch_input(dir_ / "missing.pt"));
  fs::create_directories(dir_ / "folder.pt");
  EXPECT_FALSE(is_torch_input(dir_ / "folder.pt"));
}

TEST_F(InputPaths, SafetensorsInputsByNameOrContent) {
  EXPECT_TRUE(is_safetensors_input(file("m.safetensors", "x")));
  EXPECT_TRUE(is_safetensors_input(file("m.safetensors.index.json", "{}")));
  EXPECT_TRUE(is_safetensors_input(file("weights.bin", "not hdf5")));  // its header decides
  EXPECT_FALSE(is_safetensors_input(file("c.bin", kHdf5Signature + "rest")));
  EXPECT_FALSE(is_safetensors_input(file("c.h5", "damaged")));
  file("export/model.safetensors", "x");
  EXPECT_TRUE(is_safetensors_input(dir_ / "export"));
  file("root/model.safetensors", "x");
  file("root/latest", "epoch0-global_step1.h5\n");
  EXPECT_FALSE(is_safetensors_input(dir_ / "root"));  // a checkpoint root
  fs::create_directories(dir_ / "empty");
  EXPECT_FALSE(is_safetensors_input(dir_ / "empty"));
  EXPECT_FALSE(is_safetensors_input(dir_ / "missing"));
}

}  // namespace
}  // namespace ckptio::tool
