#include "formats/hf_layout.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "core/quoted.hpp"
#include "core/regular_file.hpp"
#include "core/untrusted_json.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {
namespace {

bool contains_ci(std::string_view text, std::string_view needle) {
  auto it = std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
  return it != text.end();
}

bool is_hex40(const std::string& s) {
  return s.size() == 40 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

bool is_within(const fs::path& path, const fs::path& root) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

std::string shard_file_name(const std::string& stem, std::size_t index, std::size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", index + 1, count);
  return stem + buf + ".safetensors";
}

void check_plain_file_name(const std::string& where, const std::string& name) {
  const bool bad = name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
                   name.find('\\') != std::string::npos || name.find('\0') != std::string::npos ||
                   contains_ci(name, "%2e") || contains_ci(name, "%2f") || contains_ci(name, "%5c");
  if (bad) throw FormatError(where + ": file name " + quoted_text(name) + " would leave its folder");
}

HfIndex parse_hf_index(const std::string& file, std::string_view text) {
  using nlohmann::json;
  auto parsed = try_parse_untrusted_json(text);
  if (parsed.problem != UntrustedJsonResult::Problem::None)
    throw FormatError(file + ": index is " +
                      (parsed.problem == UntrustedJsonResult::Problem::Syntax ? parsed.describe()
                                                                              : "malformed: " + parsed.describe()));
  const json doc = std::move(parsed.value);
  if (!doc.is_object()) throw FormatError(file + ": index is not a JSON object");
  auto wm = doc.find("weight_map");
  if (wm == doc.end() || !wm->is_object()) throw FormatError(file + ": index has no weight_map object");
  HfIndex index;
  std::set<std::string> files;
  for (const auto& [tensor, value] : wm->items()) {
    if (!value.is_string()) throw FormatError(file + ": weight_map entry " + quoted_text(tensor) + " is not a string");
    const auto& name = value.get_ref<const std::string&>();
    check_plain_file_name(file + ": weight_map entry " + quoted_text(tensor), name);
    index.weight_map[tensor] = name;
    files.insert(name);
  }
  index.files.assign(files.begin(), files.end());
  if (auto md = doc.find("metadata"); md != doc.end()) {
    if (!md->is_object()) throw FormatError(file + ": index metadata is not a JSON object");
    if (auto ts = md->find("total_size"); ts != md->end() && !ts->is_null()) {
      if (ts->is_number_unsigned())
        index.total_size = ts->get<std::uint64_t>();
      else if (ts->is_number_integer() && ts->get<std::int64_t>() >= 0)
        index.total_size = static_cast<std::uint64_t>(ts->get<std::int64_t>());
      else
        throw FormatError(file + ": index metadata.total_size is not a non-negative integer");
    }
  }
  return index;
}

fs::path hf_cache_root() {
  if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v) return v;
  if (const char* v = std::getenv("HF_HOME"); v && *v) return fs::path(v) / "hub";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".cache" / "huggingface" / "hub";
}

bool is_hf_repo_id(std::string_view text) {
  if (text.empty() || text.size() > 200) return false;
  int slashes = 0;
  std::size_t part_start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      const auto part = text.substr(part_start, i - part_start);
      if (part.empty() || part == "." || part == ".." || part.find("--") != std::string_view::npos) return false;
      if (i < text.size() && ++slashes > 1) return false;
      part_start = i + 1;
      continue;
    }
    const char c = text[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

fs::path resolve_inside(const fs::path& path, const fs::path& root) {
  std::error_code ec;
  const fs::path real_root = fs::canonical(root, ec);
  if (ec) throw IoError("cannot resolve " + root.string() + ": " + ec.message());
  const fs::path real = fs::canonical(path, ec);
  if (ec) throw IoError("cannot resolve " + path.string() + ": " + ec.message());
  if (!is_within(real, real_root))
    throw FormatError(path.string() + " is a symlink to " + real.string() + ", outside " + real_root.string());
  return real;
}

fs::path resolve_hf_snapshot(std::string_view repo_id, const std::string& revision) {
  const std::string id(repo_id);
  if (!is_hf_repo_id(repo_id)) throw UsageError("'" + id + "' is not a Hugging Face repo id (org/name)");
  const fs::path root = hf_cache_root();
  std::string folder = "models--" + id;
  for (std::size_t p = folder.find('/'); p != std::string::npos; p = folder.find('/')) folder.replace(p, 1, "--");
  const fs::path repo = root / folder;
  std::error_code ec;
  if (!fs::is_directory(repo, ec))
    throw IoError("Hugging Face repo '" + id + "' is not in the local cache " + root.string() +
                  " (offline: nothing is downloaded; fetch it first, e.g. with `huggingface-cli download " + id + "`)");
  const std::string rev = revision.empty() ? "main" : revision;
  std::string commit;
  if (is_hex40(rev)) {
    commit = rev;
  } else {
    check_plain_file_name("Hugging Face revision", rev);
    const fs::path ref = repo / "refs" / rev;
    auto file = open_regular_file_if_exists(ref, "Hugging Face ref");
    if (!file)
      throw IoError("Hugging Face repo '" + id + "' has no cached revision '" + rev + "' in " + repo.string() +
                    " (offline: nothing is downloaded)");
    commit = read_regular_file(*file, ref, 4096);
    commit = commit.substr(0, commit.find('\n'));
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!is_hex40(commit)) throw FormatError((repo / "refs" / rev).string() + ": not a commit hash");
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  if (!fs::is_directory(snapshot, ec))
    throw IoError("Hugging Face repo '" + id + "' revision '" + rev + "' (" + commit + ") is not in the local cache " +
                  root.string() + " (offline: nothing is downloaded)");
  return snapshot;
}

}  // namespace ckptio::detail
