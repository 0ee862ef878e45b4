// The Hugging Face index file, safe file names and the local hub cache resolver.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ckptio/error.hpp"
#include "formats/hf_layout.hpp"

namespace ckptio::detail {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::string& text) {
  try {
    parse_hf_index("m.safetensors.index.json", text);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfIndex, Parses) {
  const auto index = parse_hf_index(
      "i.json",
      R"({"metadata":{"total_size":24},"weight_map":{"a":"m-00002-of-00002.safetensors","b":"m-00001-of-00002.safetensors"}})");
  EXPECT_EQ(index.total_size, 24u);
  EXPECT_EQ(index.weight_map.at("a"), "m-00002-of-00002.safetensors");
  EXPECT_EQ(index.files, (std::vector<std::string>{"m-00001-of-00002.safetensors", "m-00002-of-00002.safetensors"}));
}

TEST(HfIndex, ShardFileNames) {
  EXPECT_EQ(shard_file_name("model", 0, 3), "model-00001-of-00003.safetensors");
  EXPECT_EQ(shard_file_name("ema", 11, 12), "ema-00012-of-00012.safetensors");
}

TEST(HfIndex, RejectsNamesThatLeaveTheFolder) {
  EXPECT_EQ(error_of(R"({"weight_map":{"a":"../x.safetensors"}})"),
            "m.safetensors.index.json: weight_map entry 'a': file name '../x.safetensors' would leave its folder");
  EXPECT_EQ(error_of(R"({"weight_map":{"a":"/etc/passwd"}})"),
            "m.safetensors.index.json: weight_map entry 'a': file name '/etc/passwd' would leave its folder");
  EXPECT_EQ(error_of(R"({"weight_map":{"a":"%2E%2e"}})"),
            "m.safetensors.index.json: weight_map entry 'a': file name '%2E%2e' would leave its folder");
  EXPECT_EQ(error_of(R"({"weight_map":{"a":".."}})"),
            "m.safetensors.index.json: weight_map entry 'a': file name '..' would leave its folder");
}

TEST(HfIndex, RejectsMalformedIndexes) {
  EXPECT_EQ(error_of(R"({"metadata":{}})"), "m.safetensors.index.json: index has no weight_map object");
  EXPECT_EQ(error_of(R"({"weight_map":{"a":1}})"), "m.safetensors.index.json: weight_map entry 'a' is not a string");
  EXPECT_EQ(error_of(R"({"weight_map":{},"metadata":{"total_size":-1}})"),
            "m.safetensors.index.json: index metadata.total_size is not a non-negative integer");
  EXPECT_EQ(error_of("[]"), "m.safetensors.index.json: index is not a JSON object");
}

TEST(HfCache, RepoIds) {
  EXPECT_TRUE(is_hf_repo_id("org/name"));
  EXPECT_TRUE(is_hf_repo_id("gpt2"));
  EXPECT_TRUE(is_hf_repo_id("Org-1/name_2.v3"));
  EXPECT_FALSE(is_hf_repo_id("../x"));
  EXPECT_FALSE(is_hf_repo_id("a/b/c"));
  EXPECT_FALSE(is_hf_repo_id("/abs"));
  EXPECT_FALSE(is_hf_repo_id("a--b/c"));
}

TEST(HfCache, ResolvesSnapshotsAndRefusesEscapingSymlinks) {
  const fs::path root = fs::temp_directory_path() / ("ckptio_hfcache_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const fs::path repo = root / "models--org--name";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / commit);
  std::ofstream(repo / "refs" / "main") << commit;
  std::ofstream(repo / "blobs" / "abc") << "x";
  fs::create_symlink("../../blobs/abc", repo / "snapshots" / commit / "model.safetensors");
  std::ofstream(root / "outside") << "y";
  fs::create_symlink("../../../outside", repo / "snapshots" / commit / "evil.safetensors");

  ::setenv("HF_HUB_CACHE", root.c_str(), 1);
  const fs::path snap = resolve_hf_snapshot("org/name");
  EXPECT_EQ(snap, repo / "snapshots" / commit);
  EXPECT_EQ(resolve_hf_snapshot("org/name", commit), snap);
  EXPECT_EQ(resolve_inside(snap / "model.safetensors", repo), fs::canonical(repo / "blobs" / "abc"));
  EXPECT_THROW(resolve_inside(snap / "evil.safetensors", repo), FormatError);
  try {
    resolve_hf_snapshot("org/other");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), "Hugging Face repo 'org/other' is not in the local cache " + root.string() +
                                         " (offline: nothing is downloaded; fetch it first, e.g. with "
                                         "`huggingface-cli download org/other`)");
  }
  EXPECT_THROW(resolve_hf_snapshot("org/name", "v2"), IoError);
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_HOME", "/nonexistent-home", 1);
  EXPECT_EQ(hf_cache_root(), fs::path("/nonexistent-home/hub"));
  ::unsetenv("HF_HOME");
  fs::remove_all(root);
}

}  // namespace
}  // namespace ckptio::detail
