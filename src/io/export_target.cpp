#include "io/export_target.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ckptio/error.hpp"
#include "core/regular_file.hpp"
#include "formats/safetensors_header.hpp"
#include "io/fs_util.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {
namespace {

// The names a checkpoint root uses for its own files.
bool reserved_root_name(const std::string& name) {
  const std::string partial = ".partial";
  const bool is_partial =
      name.size() > partial.size() && name.compare(name.size() - partial.size(), partial.size(), partial) == 0;
  return name == "latest" || name == ".ckptio.lock" || parse_checkpoint_name(name).has_value() ||
         (is_partial && parse_checkpoint_name(name.substr(0, name.size() - partial.size())).has_value());
}

// The first bytes of a regular file, up to `n`.
std::string head_of(const fs::path& path, std::size_t n) {
  RegularFile file = open_regular_file(path, "file");
  std::string head(n, '\0');
  ssize_t got = 0;
  do {
    got = ::pread(file.fd.get(), head.data(), n, 0);
  } while (got < 0 && errno == EINTR);
  head.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return head;
}

// A safetensors file starts with an 8-byte little-endian header length and then '{'.
bool looks_like_safetensors(const fs::path& path, std::uint64_t size) {
  const std::string head = head_of(path, 9);
  if (head.size() < 9 || head[8] != '{') return false;
  const std::uint64_t n = read_le64(reinterpret_cast<const unsigned char*>(head.data()));
  return n >= 2 && n <= kSafetensorsMaxHeaderBytes && n <= size - 8;
}

bool looks_like_json_object(const fs::path& path) {
  const std::string head = head_of(path, 64);
  const auto first = head.find_first_not_of(" \t\r\n");
  return first != std::string::npos && head[first] == '{';
}

}  // namespace

std::string export_output_problem(const fs::path& path, bool is_index) {
  if (reserved_root_name(path.filename().string()))
    return "the name belongs to a checkpoint root's own files (epoch{E}-global_step{G}.h5, latest, .ckptio.lock)";
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return std::string("it cannot be examined: ") + std::strerror(errno);
  }
  if (S_ISLNK(st.st_mode)) return "it is a symbolic link";
  if (!S_ISREG(st.st_mode)) return "it is " + file_type_name(st.st_mode) + ", not a regular file";
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (has_hdf5_signature(path)) return "it is an HDF5 file (a checkpoint?), not an earlier export";
  const bool expected = is_index ? looks_like_json_object(path) : looks_like_safetensors(path, size);
  if (!expected)
    return is_index ? "it exists and is not a JSON index (export replaces only what an earlier export wrote)"
                    : "it exists and is not a safetensors file (export replaces only what an earlier export wrote)";
  return {};
}

void check_export_outputs(const fs::path& checkpoint, const std::vector<fs::path>& files,
                          const std::optional<fs::path>& index) {
  std::error_code ec;
  auto check = [&](const fs::path& file, bool is_index) {
    if (file.lexically_normal() == fs::absolute(checkpoint).lexically_normal() || fs::equivalent(file, checkpoint, ec))
      throw UsageError("export: will not write " + file.string() + ": it is the checkpoint being exported");
    if (const std::string problem = export_output_problem(file, is_index); !problem.empty())
      throw UsageError("export: will not write " + file.string() + ": " + problem);
  };
  for (const auto& f : files) check(f, false);
  if (index) check(*index, true);
}

}  // namespace ckptio::detail
