// Writing and reading safetensors files: every dtype round-trips through a real file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "ckptio/error.hpp"
#include "formats/safetensors_file.hpp"

namespace ckptio::detail {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ckptio_st_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(SafetensorsFile, EveryDtypeRoundTrips) {
  const fs::path dir = temp_dir("roundtrip");
  std::vector<std::vector<unsigned char>> buffers;
  std::vector<SafetensorsWriteTensor> tensors;
  for (const DType d : kAllDTypes) {
    const Shape shape{2, 3};
    std::vector<unsigned char> bytes(6 * dtype_size(d));
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + dtype_size(d));
    buffers.push_back(std::move(bytes));
    tensors.push_back({{"t." + std::string(dtype_name(d)), d, shape}, buffers.back().data()});
  }
  tensors.push_back({{"scalar", DType::F32, {}}, buffers[1].data()});
  tensors.push_back({{"empty", DType::F32, {0, 4}}, nullptr});
  const fs::path path = dir / "all.safetensors";
  write_safetensors_file(path, tensors, {{"format", "pt"}});
  EXPECT_FALSE(fs::exists(path.string() + ".tmp." + std::to_string(::getpid())));

  const SafetensorsFile file(path);
  EXPECT_EQ(file.header().metadata.at("format"), "pt");
  ASSERT_EQ(file.header().tensors.size(), tensors.size());
  for (const auto& t : tensors) {
    const auto* stored = file.header().find(t.entry.name);
    ASSERT_NE(stored, nullptr) << t.entry.name;
    EXPECT_EQ(stored->dtype, t.entry.dtype);
    EXPECT_EQ(stored->shape, t.entry.shape);
    if (stored->bytes() > 0) EXPECT_EQ(std::memcmp(file.data(*stored), t.data, stored->bytes()), 0) << t.entry.name;
  }
  fs::remove_all(dir);
}

TEST(SafetensorsFile, MissingAndBadFilesNameThePath) {
  const fs::path dir = temp_dir("bad");
  try {
    SafetensorsFile f(dir / "nope.safetensors");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot open safetensors file " + (dir / "nope.safetensors").string() + ": No such file or directory");
  }
  const fs::path bad = dir / "short.safetensors";
  std::ofstream(bad) << "abcd";
  try {
    SafetensorsFile f(bad);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()),
              bad.string() + ": file is 4 bytes, shorter than the 8-byte safetensors header length");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ckptio::detail
