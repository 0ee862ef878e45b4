#include "ckptio/inspect.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "ckptio/error.hpp"
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
  const auto content = detail::read_small_file(root / "latest", 4096);
  if (!content) return std::nullopt;
  std::string name = *content;
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  if (!detail::parse_checkpoint_name(name))
    throw FormatError((root / "latest").string() + " does not name a checkpoint file (got '" + name.substr(0, 80) +
                      "')");
  return root / name;
}

fs::path resolve_checkpoint_path(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    auto latest = read_latest(path);
    if (!latest) throw IoError("no checkpoint in " + path.string() + " (it has no `latest` file)");
    return *latest;
  }
  if (!fs::exists(path, ec)) throw IoError("no such checkpoint: " + path.string());
  return path;
}

ContainerInfo inspect_container(const fs::path& path) {
  const fs::path file = resolve_checkpoint_path(path);
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  detail::h5::ContainerReader reader(MPI_COMM_NULL, file.string());
  const auto index = detail::h5::decode_index(reader.read_bytes(detail::h5::kIndexDataset, 1ull << 30), file.string());
  ContainerInfo info;
  info.path = file;
  info.format_version = reader.format_version();
  const auto& a = reader.root_attributes();
  info.library_version = a.library_version;
  info.created = a.created;
  info.host = a.host;
  info.world_size = index.world_size;
  info.running =
      detail::h5::decode_running_state(reader.read_bytes(detail::h5::kRunningStateDataset, 1ull << 30), file.string());
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
