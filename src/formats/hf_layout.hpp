// Hugging Face layouts: the sharded-export index file, safe file names inside a folder, and
// the local hub cache (offline only: nothing is ever downloaded). No MPI.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ckptio::detail {

// `<stem>.safetensors.index.json`: which shard file holds each tensor.
struct HfIndex {
  std::map<std::string, std::string> weight_map;  // tensor -> file name
  std::optional<std::uint64_t> total_size;        // metadata.total_size
  std::vector<std::string> files;                 // distinct files, sorted
};

// Parses an index file's text. Throws FormatError naming `file` for malformed JSON, a
// missing or non-string weight_map, or a file name that would leave the folder.
HfIndex parse_hf_index(const std::string& file, std::string_view text);

// The shard file names of a sharded export: "<stem>-00001-of-00003.safetensors" for
// index 0 of 3.
std::string shard_file_name(const std::string& stem, std::size_t index, std::size_t count);

// Throws FormatError ("<where>: file name '<name>' would leave its folder") unless `name` is
// a plain file name: not empty, no '/' or '\', not "." or "..", no percent-encoded dot or
// slash, no NUL.
void check_plain_file_name(const std::string& where, const std::string& name);

// The hub cache root: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path hf_cache_root();

// True when `text` looks like a repo id ("org/name" or "name" of [A-Za-z0-9._-]).
bool is_hf_repo_id(std::string_view text);

// Resolves a repo id to its snapshot folder in the local cache
// (<root>/models--org--name/snapshots/<commit>), the commit taken from refs/<revision>
// (default "main") or given as 40 hex digits. Throws IoError with a clear message when the
// repo or revision is not cached.
std::filesystem::path resolve_hf_snapshot(std::string_view repo_id, const std::string& revision = "");

// `path` with its symlinks resolved, after checking that the target stays inside `root`
// (both canonicalised). Throws FormatError when it leaves, IoError when it is missing.
std::filesystem::path resolve_inside(const std::filesystem::path& path, const std::filesystem::path& root);

}  // namespace ckptio::detail
