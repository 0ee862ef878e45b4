#include "io/retention.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "core/log.hpp"
#include "core/regular_file.hpp"
#include "io/fs_util.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {
namespace {

bool older(const std::string& a, const std::string& b) {
  const auto na = parse_checkpoint_name(a), nb = parse_checkpoint_name(b);
  if (na->global_step != nb->global_step) return na->global_step < nb->global_step;
  if (na->epoch != nb->epoch) return na->epoch < nb->epoch;
  return a < b;
}

}  // namespace

std::string root_entry_problem(const fs::path& root, const std::string& name) {
  const fs::path path = root / name;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? "it does not exist" : std::string("it cannot be read: ") + std::strerror(errno);
  if (S_ISLNK(st.st_mode))
    return "it is a symbolic link (checkpoints in a root are regular files in it; ckptio does not follow links there)";
  if (!S_ISREG(st.st_mode)) return "it is " + file_type_name(st.st_mode) + ", not a regular file";
  if (!has_hdf5_signature(path)) return "it is not an HDF5 file";
  return {};
}

std::vector<std::string> committed_checkpoints(const fs::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) throw IoError("cannot list checkpoint root " + root.string() + ": " + ec.message());
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!parse_checkpoint_name(name)) continue;
    if (const std::string problem = root_entry_problem(root, name); !problem.empty()) {
      log_warn("ignoring ", entry.path().string(), ", which is named like a checkpoint but ", problem);
      continue;
    }
    names.push_back(name);
  }
  std::sort(names.begin(), names.end(), older);
  return names;
}

std::vector<std::string> load_order(const fs::path& root) {
  auto names = committed_checkpoints(root);
  std::reverse(names.begin(), names.end());  // newest first
  std::optional<fs::path> latest;
  try {
    latest = read_latest(root);
  } catch (const Error& e) {
    if (names.empty()) throw;
    log_warn(e.what(), "; falling back to the newest committed checkpoint, ", names.front());
    return names;
  }
  if (!latest) return names;
  const std::string latest_name = latest->filename().string();
  if (std::find(names.begin(), names.end(), latest_name) == names.end()) {
    const std::string problem = root_entry_problem(root, latest_name);
    const std::string text = (root / "latest").string() + " names " + latest_name + ", but " +
                             (problem.empty() ? std::string("it is not a committed checkpoint") : problem);
    if (names.empty()) {
      if (problem == "it does not exist") throw IoError(text);
      throw FormatError(text);
    }
    log_warn(text, "; falling back to the newest committed checkpoint, ", names.front());
    return names;
  }
  std::vector<std::string> order{latest_name};
  for (const auto& n : names)
    if (n != latest_name && older(n, latest_name)) order.push_back(n);
  return order;
}

fs::path resolve_load_path(const fs::path& root, const fs::path& path) {
  std::error_code ec;
  if (path.is_relative() && !fs::exists(fs::symlink_status(path, ec)) &&
      fs::exists(fs::symlink_status(root / path, ec))) {
    const fs::path in_root = (root / path).lexically_normal();
    if (in_root.parent_path() == root.lexically_normal() && !fs::is_directory(fs::symlink_status(in_root, ec))) {
      if (const std::string problem = root_entry_problem(root, in_root.filename().string()); !problem.empty())
        throw FormatError("checkpoint " + in_root.string() + " cannot be loaded: " + problem);
    }
    return resolve_checkpoint_path(in_root);
  }
  return resolve_checkpoint_path(path);
}

bool falls_back_on(ErrorKind kind) {
  return kind == ErrorKind::Format || kind == ErrorKind::Io || kind == ErrorKind::Integrity ||
         kind == ErrorKind::Generic;
}

std::vector<fs::path> checkpoints_to_prune(const fs::path& root, int keep_last, const std::string& just_committed) {
  std::vector<fs::path> victims;
  if (keep_last <= 0) return victims;
  const auto names = committed_checkpoints(root);
  std::string latest_name;
  if (auto latest = read_latest(root)) latest_name = latest->filename().string();
  const std::size_t keep = static_cast<std::size_t>(keep_last);
  if (names.size() <= keep) return victims;
  for (std::size_t i = 0; i + keep < names.size(); ++i) {
    if (names[i] == just_committed || names[i] == latest_name) continue;
    victims.push_back(root / names[i]);
  }
  return victims;
}

std::vector<fs::path> stale_partials(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) return out;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".h5.partial";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        parse_checkpoint_name(name.substr(0, name.size() - std::string(".partial").size())))
      out.push_back(entry.path());
  }
  return out;
}

}  // namespace ckptio::detail
