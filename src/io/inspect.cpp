#include "ckptio/inspect.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ckptio/error.hpp"
#include "core/quoted.hpp"
#include "core/regular_file.hpp"
#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "h5/index_codec.hpp"
#include "h5/library_lock.hpp"
#include "h5/running_state_codec.hpp"
#include "io/fs_util.hpp"
#include "io/retention.hpp"

namespace fs = std::filesystem;

namespace ckptio {

std::optional<fs::path> read_latest(const fs::path& root) {
  const fs::path file = root / "latest";
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw IoError("cannot read " + file.string() + ": " + std::strerror(errno));
  }
  // ckptio writes `latest` as a small regular file; anything else in its place is damage.
  if (!S_ISREG(st.st_mode))
    throw FormatError(file.string() + " is " + detail::file_type_name(st.st_mode) +
                      ", not the regular file that names the latest checkpoint");
  const auto content = detail::read_small_file(file, 4096, "latest file");
  if (!content) return std::nullopt;  // removed meanwhile
  std::string name = *content;
  if (!name.empty() && name.back() == '\n') name.pop_back();
  if (!name.empty() && name.back() == '\r') name.pop_back();
  if (!detail::parse_checkpoint_name(name))
    throw FormatError(
        file.string() + " does not name a checkpoint file of its root (" +
        (content->empty() ? std::string("it is empty") : "it holds " + detail::quoted_text(*content, 80)) +
        "; expected a name like epoch1-global_step20.h5 and a newline)");
  return root / name;
}

fs::path resolve_checkpoint_path(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw IoError("no such checkpoint: " + path.string());
  if (!fs::is_directory(status)) return path;
  auto latest = read_latest(path);
  if (!latest) {
    if (detail::parse_checkpoint_name(path.filename().string()))
      throw IoError("checkpoint " + path.string() + " is a folder, not a container file");
    throw IoError("no checkpoint in " + path.string() + " (it has no `latest` file)");
  }
  // What `latest` names must be one of the root's checkpoints: never a link out of it.
  const std::string name = latest->filename().string();
  const std::string problem = detail::root_entry_problem(path, name);
  if (problem == "it does not exist")
    throw IoError((path / "latest").string() + " names " + name + ", which does not exist");
  if (!problem.empty()) throw FormatError((path / "latest").string() + " names " + name + ", but " + problem);
  return *latest;
}

ContainerInfo inspect_container(const fs::path& path) {
  const fs::path file = resolve_checkpoint_path(path);
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  detail::h5::ContainerReader reader(MPI_COMM_NULL, file.string());
  const auto index = reader.read_index();
  ContainerInfo info;
  info.path = file;
  info.format_version = reader.format_version();
  const auto& a = reader.root_attributes();
  info.library_version = a.library_version;
  info.created = a.created;
  info.host = a.host;
  info.world_size = index.world_size;
  info.running = detail::h5::decode_running_state(
      reader.read_bytes(detail::h5::kRunningStateDataset, detail::h5::kMaxRunningStateBytes), file.string());
  for (const auto& b : index.rank_blobs) info.rank_blob_sizes.push_back(b.bytes);
  for (const char* group : kGroupNames)
    for (const auto& t : index.tensors) {
      if (t.group != group) continue;
      std::uint64_t elements = 1;
      for (auto d : t.shape) elements *= static_cast<std::uint64_t>(d);
      info.tensors.push_back(TensorInfo{.format = TensorFormat::Container,
                                        .group = t.group,
                                        .name = t.name,
                                        .dtype = t.dtype,
                                        .shape = t.shape,
                                        .bytes = elements * dtype_size(t.dtype),
                                        .pieces = t.pieces.size()});
    }
  reader.close();
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0) info.file_bytes = static_cast<std::uint64_t>(st.st_size);
  return info;
}

std::vector<CheckpointEntry> list_checkpoints(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw IoError("no such checkpoint root: " + root.string());
  std::string latest_name;
  try {
    if (auto latest = read_latest(root)) latest_name = latest->filename().string();
  } catch (const FormatError&) {
    // A malformed `latest` does not stop listing; nothing is marked.
  }
  std::vector<CheckpointEntry> out;
  for (const auto& name : detail::committed_checkpoints(root)) {
    CheckpointEntry e;
    e.path = root / name;
    e.name = name;
    const auto parsed = detail::parse_checkpoint_name(name);
    e.epoch = parsed->epoch;
    e.global_step = parsed->global_step;
    struct stat st {};
    if (::stat(e.path.c_str(), &st) == 0) {
      e.file_bytes = static_cast<std::uint64_t>(st.st_size);
      e.modified = detail::iso_time(st.st_mtime);
    }
    e.is_latest = name == latest_name;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ckptio
