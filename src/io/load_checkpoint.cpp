// load_checkpoint: weights from safetensors (single, sharded, Hugging Face cache) or a
// ckptio container into a state dict, each rank reading only its own pieces.
#include "ckptio/load_checkpoint.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/torch_file.hpp"
#include "core/log.hpp"
#include "core/piece_math.hpp"
#include "formats/float_convert.hpp"
#include "formats/hf_layout.hpp"
#include "io/fs_util.hpp"
#include "io/load_checks.hpp"
#include "io/safetensors_paths.hpp"
#include "io/tensor_source.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::Comm;
using detail::Failure;

namespace {

// What rank 0 resolved `path` to, for every rank.
struct Resolved {
  bool container = false;
  bool torch = false;              // a PyTorch torch.save file
  std::string group;               // container only
  std::vector<std::string> files;  // safetensors files, or the one container
};

std::string encode(const Resolved& r) {
  return nlohmann::json{{"container", r.container}, {"torch", r.torch}, {"group", r.group}, {"files", r.files}}.dump();
}

Resolved decode(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  return {j["container"], j["torch"], j["group"], j["files"]};
}

// True when `path` ends in ".pt" or ".pth" (case-insensitive), the names torch.save files get.
bool has_torch_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".pt" || ext == ".pth";
}

// The top-level key of a torch.save file to load: the one asked for, else "ema" or "model"
// when the file nests its tensors under such a key (as a training checkpoint does), else
// none (a plain state dict).
std::string torch_group(const fs::path& file, const std::string& asked) {
  const TorchFile torch(file);
  auto has_prefix = [&](const std::string& key) {
    return std::any_of(torch.tensors().begin(), torch.tensors().end(),
                       [&](const TensorInfo& t) { return t.name.compare(0, key.size() + 1, key + ".") == 0; });
  };
  if (!asked.empty()) {
    if (!has_prefix(asked)) throw UsageError(file.string() + " has no tensors under the top-level key '" + asked + "'");
    return asked;
  }
  for (const char* key : {"ema", "model"})
    if (has_prefix(key)) return key;
  return "";
}

Resolved resolve(const std::string& path, const LoadOptions& options) {
  Resolved r;
  const fs::path p(path);
  std::error_code ec;
  const bool exists = fs::exists(p, ec);
  if (!exists) {
    if (!detail::is_hf_repo_id(path))
      throw IoError("no such file or folder: " + path + " (nor a Hugging Face repo id)");
    const fs::path snapshot = detail::resolve_hf_snapshot(path, options.revision);
    const fs::path repo_folder = snapshot.parent_path().parent_path();
    r.files = detail::safetensors_files_of_folder(snapshot, &repo_folder);
    return r;
  }
  if (fs::is_directory(p)) {
    if (fs::exists(p / "latest")) {
      r.files = {resolve_checkpoint_path(p).string()};
      r.container = true;
    } else {
      r.files = detail::safetensors_files_of_folder(p, nullptr);
    }
  } else if (detail::ends_with(path, ".json")) {
    r.files = detail::safetensors_files_of_index(p, nullptr);
  } else if (detail::is_hdf5_file(p)) {
    r.files = {path};
    r.container = true;
  } else if (has_torch_extension(p)) {
    r.files = {path};
    r.torch = true;
    r.group = torch_group(p, options.group);
  } else {
    r.files = {path};
  }
  if (r.container) {
    const ContainerInfo info = inspect_container(r.files[0]);
    r.group = options.group;
    if (r.group.empty()) {
      const bool has_ema =
          std::any_of(info.tensors.begin(), info.tensors.end(), [](const TensorInfo& t) { return t.group == "ema"; });
      r.group = has_ema ? "ema" : "model";
    }
    if (r.group != "model" && r.group != "optimizer" && r.group != "ema")
      throw UsageError("unknown group '" + r.group + "' (expected model, optimizer or ema)");
  }
  return r;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(names.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > shown) out += ", ... (" + std::to_string(names.size() - shown) + " more)";
  return out;
}

}  // namespace

LoadCheckpointResult load_checkpoint(MPI_Comm user_comm, const StateDict& state_dict, const std::string& path,
                                     const LoadOptions& options) {
  const Comm comm(user_comm);
  const int rank = comm.rank();
  const std::string encoded =
      detail::agreed_from_rank0(comm, "load_checkpoint " + path, [&] { return encode(resolve(path, options)); });
  const Resolved resolved = decode(encoded);
  LoadCheckpointResult result;
  for (const auto& f : resolved.files) result.files.push_back(f);

  std::unique_ptr<detail::TensorSource> source;
  detail::run_agreed(comm, "load_checkpoint " + path, [&] {
    detail::check_writable_targets(state_dict, "", rank);
    for (const auto& [name, shard] : state_dict) {
      if (shard.device != kHostMemory)
        throw UsageError("tensor " + name + " on rank " + std::to_string(rank) +
                         ": device memory is not supported by load_checkpoint; pass host memory");
      if (auto problem = detail::piece_problem(shard); !problem.empty())
        throw UsageError("tensor " + name + " on rank " + std::to_string(rank) + ": " + problem);
    }
    if (resolved.container) {
      source = detail::open_container_source(resolved.files[0], resolved.group, options.verify);
    } else if (resolved.torch) {
      source = detail::open_torch_source(resolved.files[0], resolved.group);
    } else {
      std::vector<fs::path> files(resolved.files.begin(), resolved.files.end());
      source = detail::open_safetensors_source(files);
    }
  });

  // Keys: what any rank asks for against what is stored.
  std::map<std::string, std::size_t> stored;
  for (std::size_t i = 0; i < source->tensors().size(); ++i) stored[source->tensors()[i].name] = i;
  std::string mine;
  for (const auto& [name, shard] : state_dict) mine += name + '\n';
  std::set<std::string> requested;
  for (const auto& keys : comm.allgather_bytes(mine)) {
    for (std::size_t pos = 0; pos < keys.size();) {
      const auto end = keys.find('\n', pos);
      requested.insert(keys.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  std::vector<std::string> missing, unexpected;
  for (const auto& name : requested)
    if (!stored.count(name)) missing.push_back(name);
  for (const auto& [name, index] : stored)
    if (!requested.count(name)) unexpected.push_back(name);
  const std::string what = resolved.files.size() == 1 ? resolved.files[0] : path;
  if (options.strict && (!missing.empty() || !unexpected.empty())) {
    std::string message = what + ": state dict does not match (strict load)";
    if (!missing.empty()) message += "; missing keys (" + std::to_string(missing.size()) + "): " + join_names(missing);
    if (!unexpected.empty())
      message += "; unexpected keys (" + std::to_string(unexpected.size()) + "): " + join_names(unexpected);
    detail::rethrow(Failure{ErrorKind::Mismatch, detail::agreed_message(0, "load_checkpoint", message)});
  }
  for (auto& name : missing) result.keys.missing.push_back({resolved.group, std::move(name)});
  for (auto& name : unexpected) result.keys.unexpected.push_back({resolved.group, std::move(name)});

  detail::run_agreed(comm, "load_checkpoint " + path, [&] {
    std::vector<char> staging;
    for (const auto& [name, shard] : state_dict) {
      const auto it = stored.find(name);
      if (it == stored.end()) continue;
      const auto& st = source->tensors()[it->second];
      const std::string where = st.file + ": tensor '" + name + "' on rank " + std::to_string(rank);
      const bool convert = st.dtype != shard.dtype;
      if (convert && !(options.convert_dtype && detail::dtype_convertible(st.dtype, shard.dtype)))
        throw MismatchError(where + ": requested as " + std::string(dtype_name(shard.dtype)) + " but stored as " +
                            std::string(dtype_name(st.dtype)) +
                            (options.convert_dtype ? " (not convertible)" : " (set convert_dtype to convert)"));
      if (st.shape != shard.global_shape)
        throw MismatchError(where + ": requested with global shape " + detail::shape_to_string(shard.global_shape) +
                            " but stored with " + detail::shape_to_string(st.shape));
      for (const auto& seg : detail::segments_of(shard)) {
        char* dst = static_cast<char*>(shard.data.writable()) +
                    static_cast<std::size_t>(seg.memory_offset) * dtype_size(shard.dtype);
        const auto n = static_cast<std::size_t>(detail::block_volume(seg.block));
        if (!convert) {
          source->read_block(it->second, seg.block, dst);
          continue;
        }
        staging.resize(n * dtype_size(st.dtype));
        source->read_block(it->second, seg.block, staging.data());
        detail::convert_elements(staging.data(), st.dtype, dst, shard.dtype, n);
      }
    }
  });
  detail::log_info("loaded ", requested.size() - result.keys.missing.size(), " tensors from ", what);
  return result;
}

}  // namespace ckptio
