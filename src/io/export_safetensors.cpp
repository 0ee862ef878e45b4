// export_safetensors: a container group to safetensors, written in parallel through MPI-IO.
#include "ckptio/safetensors.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "core/log.hpp"
#include "core/piece_math.hpp"
#include "formats/float_convert.hpp"
#include "formats/hf_layout.hpp"
#include "formats/safetensors_header.hpp"
#include "h5/container_reader.hpp"
#include "io/export_target.hpp"
#include "io/fs_util.hpp"
#include "io/verified_read.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"
#include "mpi/mpi_file.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::Comm;
using detail::Failure;

namespace {

struct GroupTensor {
  std::string name;
  DType stored = DType::F32;
  DType out = DType::F32;
  Shape shape;
};

// What rank 0 learns from the container, for every rank.
struct Source {
  std::string path;
  std::string group;
  std::int64_t epoch = 0;
  std::int64_t global_step = 0;
  std::vector<GroupTensor> tensors;  // sorted by name
};

std::string encode_source(const Source& s) {
  nlohmann::json j{{"path", s.path}, {"group", s.group}, {"epoch", s.epoch}, {"global_step", s.global_step}};
  j["tensors"] = nlohmann::json::array();
  for (const auto& t : s.tensors)
    j["tensors"].push_back({t.name, static_cast<int>(t.stored), static_cast<int>(t.out), t.shape});
  return j.dump();
}

Source decode_source(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  Source s{j["path"], j["group"], j["epoch"], j["global_step"], {}};
  for (const auto& t : j["tensors"])
    s.tensors.push_back({t[0], static_cast<DType>(t[1].get<int>()), static_cast<DType>(t[2].get<int>()), t[3]});
  return s;
}

Source read_source(const fs::path& checkpoint, const std::string& requested_group, const ExportOptions& options) {
  if (options.dtype && !detail::dtype_convertible(DType::F32, *options.dtype))
    throw UsageError("--dtype must be a floating-point type (F64, F32, F16 or BF16), not " +
                     std::string(dtype_name(*options.dtype)));
  const ContainerInfo info = inspect_container(resolve_checkpoint_path(checkpoint));
  Source s;
  s.path = info.path.string();
  s.epoch = info.running.epoch;
  s.global_step = info.running.global_step;
  auto has = [&](const std::string& g) {
    return std::any_of(info.tensors.begin(), info.tensors.end(), [&](const TensorInfo& t) { return t.group == g; });
  };
  s.group = requested_group;
  if (s.group.empty()) s.group = has("ema") ? "ema" : "model";
  if (s.group != "model" && s.group != "optimizer" && s.group != "ema")
    throw UsageError("unknown group '" + s.group + "' (expected model, optimizer or ema)");
  if (!has(s.group)) throw UsageError("" + s.path + " has no tensors in group '" + s.group + "'");
  for (const auto& t : info.tensors) {
    if (t.group != s.group) continue;
    DType out = t.dtype;
    if (options.dtype && detail::dtype_convertible(t.dtype, *options.dtype)) out = *options.dtype;
    s.tensors.push_back({t.name, t.dtype, out, t.shape});
  }
  std::sort(s.tensors.begin(), s.tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return s;
}

std::uint64_t out_bytes(const GroupTensor& t) {
  std::uint64_t n = dtype_size(t.out);
  for (auto d : t.shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

// Hugging Face's split: in order; a tensor larger than the limit gets a shard of its own;
// otherwise a new shard starts when the tensor would not fit the current one.
std::vector<std::vector<std::size_t>> split_into_shards(const std::vector<GroupTensor>& tensors, std::uint64_t max) {
  std::vector<std::vector<std::size_t>> shards;
  std::vector<std::size_t> current;
  std::uint64_t current_bytes = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t b = out_bytes(tensors[i]);
    if (max > 0 && b > max) {
      shards.push_back({i});
      continue;
    }
    if (max > 0 && current_bytes + b > max && !current.empty()) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += b;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  return shards;
}

// One piece of work: elements [begin, end) of a tensor, written at `file_offset` of a shard.
struct Chunk {
  std::size_t shard;
  std::size_t tensor;
  std::int64_t begin;
  std::int64_t end;
  std::uint64_t file_offset;
  std::uint64_t bytes;  // output bytes
};

// A previous export to the same FILE with another layout would leave files that a folder
// load could pick up: its index (or single file) and shards that this export did not write.
void remove_stale_outputs(const fs::path& folder, const std::string& stem, const std::vector<fs::path>& written,
                          bool sharded) {
  auto is_shard_name = [&](const std::string& name) {  // <stem>-NNNNN-of-NNNNN.safetensors
    const std::string tail = "-00000-of-00000.safetensors";
    if (name.size() != stem.size() + tail.size() || name.compare(0, stem.size(), stem) != 0) return false;
    for (std::size_t i = 0; i < tail.size(); ++i) {
      const char c = name[stem.size() + i];
      if (tail[i] == '0' ? !std::isdigit(static_cast<unsigned char>(c)) : c != tail[i]) return false;
    }
    return true;
  };
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    const bool is_index = name == stem + ".safetensors.index.json";
    const bool stale =
        (is_shard_name(name) && std::find(written.begin(), written.end(), entry.path()) == written.end()) ||
        (!sharded && is_index) || (sharded && name == stem + ".safetensors");
    if (!stale) continue;
    // Only what an earlier export wrote is removed.
    if (const std::string problem = detail::export_output_problem(entry.path(), is_index); !problem.empty()) {
      detail::log_warn("export: leaving ", entry.path().string(), " in place: ", problem);
      continue;
    }
    detail::remove_file_if_exists(entry.path());
  }
}

// The header's __metadata__: the caller's, plus where the tensors come from.
std::map<std::string, std::string> export_metadata(const Source& source, const ExportOptions& options) {
  std::map<std::string, std::string> metadata = options.metadata;
  metadata["format"] = "pt";
  // The committed name, also when exporting a container before its commit (at save time).
  std::string source_name = fs::path(source.path).filename().string();
  if (source_name.size() > 8 && source_name.substr(source_name.size() - 8) == ".partial")
    source_name.resize(source_name.size() - 8);
  metadata["ckptio.source"] = source_name;
  metadata["ckptio.group"] = source.group;
  metadata["epoch"] = std::to_string(source.epoch);
  metadata["global_step"] = std::to_string(source.global_step);
  return metadata;
}

// What every rank computes the same way before writing: the output files and their
// headers, and the chunks of tensor data with the rank that writes each.
struct ExportPlan {
  ExportResult result;  // files, tensors, tensor_bytes
  std::vector<detail::SerializedHeader> headers;
  std::vector<Chunk> chunks;
  std::vector<int> owner;  // parallel to chunks
};

ExportPlan plan_export(const Source& source, const std::vector<std::vector<std::size_t>>& shards,
                       const fs::path& out_path, const std::string& stem,
                       const std::map<std::string, std::string>& metadata, const ExportOptions& options,
                       int world_size) {
  ExportPlan plan;
  ExportResult& result = plan.result;
  auto& headers = plan.headers;
  auto& chunks = plan.chunks;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    result.files.push_back(
        shards.size() == 1 ? out_path : out_path.parent_path() / detail::shard_file_name(stem, s, shards.size()));
    std::vector<detail::SafetensorsEntry> entries;
    for (auto i : shards[s])
      entries.push_back({source.tensors[i].name, source.tensors[i].out, source.tensors[i].shape});
    headers.push_back(detail::serialize_safetensors_header(std::move(entries), metadata));
    const auto& h = headers.back();
    for (const auto& t : h.tensors) {
      // source.tensors is sorted by name: find the header's tensor by binary search.
      const auto it = std::lower_bound(source.tensors.begin(), source.tensors.end(), t.name,
                                       [](const GroupTensor& g, const std::string& n) { return g.name < n; });
      const std::size_t tensor_index = static_cast<std::size_t>(it - source.tensors.begin());
      const GroupTensor& gt = *it;
      const std::int64_t elements = detail::element_count(gt.shape);
      const std::uint64_t in_size = dtype_size(gt.stored);
      const std::int64_t per_chunk = std::max<std::int64_t>(
          1, static_cast<std::int64_t>(std::max<std::uint64_t>(options.chunk_bytes, 1) / in_size));
      for (std::int64_t b = 0; b < elements; b += per_chunk) {
        const std::int64_t e = std::min(elements, b + per_chunk);
        const std::uint64_t osz = dtype_size(gt.out);
        chunks.push_back({s, tensor_index, b, e, h.bytes.size() + t.begin + static_cast<std::uint64_t>(b) * osz,
                          static_cast<std::uint64_t>(e - b) * osz});
      }
      result.tensor_bytes += t.bytes();
    }
    result.tensors += h.tensors.size();
  }
  // Balance the chunks by bytes: each goes to the least loaded rank (ties: lowest rank).
  auto& owner = plan.owner;
  owner.resize(chunks.size());
  {
    std::vector<std::uint64_t> load(static_cast<std::size_t>(world_size), 0);
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      const auto r = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      owner[c] = static_cast<int>(r);
      load[r] += chunks[c].bytes;
    }
  }
  return plan;
}

// Reads, verifies, converts and writes the chunks this rank owns.
void write_owned_chunks(const Source& source, const ExportPlan& plan, int rank, const ExportOptions& options,
                        std::uint64_t my_total, std::vector<detail::MpiFile>& handles) {
  std::optional<detail::h5::ContainerReader> reader;
  reader.emplace(MPI_COMM_NULL, source.path);
  // Every piece read is verified against its checksums, as a load does.
  const detail::h5::ContainerIndex index = reader->read_index();
  std::map<std::string, const detail::h5::IndexTensor*> stored;
  for (const auto& t : index.tensors)
    if (t.group == source.group) stored[t.name] = &t;
  std::vector<char> in_buffer;
  std::vector<char> out_buffer;
  std::uint64_t done = 0;
  for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
    if (plan.owner[c] != rank) continue;
    const Chunk& ch = plan.chunks[c];
    const GroupTensor& t = source.tensors[ch.tensor];
    const std::size_t in_size = dtype_size(t.stored);
    in_buffer.resize(static_cast<std::size_t>(ch.end - ch.begin) * in_size);
    std::size_t pos = 0;
    const auto it = stored.find(t.name);
    if (it == stored.end() || it->second->dtype != t.stored || it->second->shape != t.shape)
      throw FormatError(source.path + ": tensor " + source.group + "/" + t.name + " changed while it was exported");
    for (const auto& block : detail::flat_range_to_blocks(t.shape, ch.begin, ch.end)) {
      detail::read_block_verified(*reader, source.path, *it->second, index.chunk_bytes, block, in_buffer.data() + pos);
      pos += static_cast<std::size_t>(detail::block_volume(block)) * in_size;
    }
    const char* data = in_buffer.data();
    if (t.out != t.stored) {
      out_buffer.resize(ch.bytes);
      detail::convert_elements(in_buffer.data(), t.stored, out_buffer.data(), t.out,
                               static_cast<std::size_t>(ch.end - ch.begin));
      data = out_buffer.data();
    }
    handles[ch.shard].write_at(ch.file_offset, data, ch.bytes);
    done += ch.bytes;
    if (rank == 0 && options.progress && my_total > 0)
      options.progress(std::min(plan.result.tensor_bytes, done * plan.result.tensor_bytes / my_total),
                       plan.result.tensor_bytes);
  }
  reader->close();
}

// Rank 0: renames every shard into place, writes the index of a sharded export, and removes
// what an earlier export left that this one did not write.
void publish_export(const Source& source, const std::vector<std::vector<std::size_t>>& shards,
                    const std::vector<fs::path>& partials, const fs::path& out_path, const std::string& stem,
                    ExportResult& result) {
  for (std::size_t s = 0; s < partials.size(); ++s) detail::rename_path(partials[s], result.files[s]);
  if (shards.size() > 1) {
    nlohmann::json index;
    index["metadata"] = {{"total_size", result.tensor_bytes}};
    index["weight_map"] = nlohmann::json::object();
    for (std::size_t s = 0; s < shards.size(); ++s)
      for (auto i : shards[s]) index["weight_map"][source.tensors[i].name] = result.files[s].filename().string();
    result.index = out_path.parent_path() / (stem + ".safetensors.index.json");
    detail::atomic_write_file(*result.index, index.dump(2) + "\n");
  }
  remove_stale_outputs(out_path.parent_path(), stem, result.files, shards.size() > 1);
  detail::fsync_directory(out_path.parent_path());
}

// The output as the caller named it: its absolute path, its file name without
// ".safetensors" (the stem of shard and index names) and the index of a sharded export.
struct OutputName {
  fs::path path;
  std::string stem;
  fs::path folder() const { return path.parent_path(); }
  fs::path index() const { return folder() / (stem + ".safetensors.index.json"); }
};

OutputName output_name(const fs::path& out) {
  OutputName name{fs::absolute(out).lexically_normal(), {}};
  name.stem = name.path.filename().string();
  if (name.stem.size() > 12 && name.stem.substr(name.stem.size() - 12) == ".safetensors")
    name.stem.resize(name.stem.size() - 12);
  return name;
}

// Each output file is written as "<file>.partial" and renamed into place at the end.
std::vector<fs::path> partial_paths(const std::vector<fs::path>& files) {
  std::vector<fs::path> partials;
  for (const auto& f : files) partials.push_back(f.string() + ".partial");
  return partials;
}

// Rank 0 checks that the outputs may be written (the folder exists, no output is the source)
// and creates every temporary file empty; a failure is thrown on every rank.
void create_partials(const Comm& comm, const Source& source, const OutputName& name, const std::vector<fs::path>& files,
                     bool sharded, const std::vector<fs::path>& partials) {
  detail::run_agreed(comm, "export", [&] {
    if (comm.rank() != 0) return;
    if (!fs::is_directory(name.folder())) throw IoError("output folder " + name.folder().string() + " does not exist");
    detail::check_export_outputs(source.path, files, sharded ? std::optional<fs::path>(name.index()) : std::nullopt);
    for (const auto& p : partials) {
      detail::remove_file_if_exists(p);
      detail::create_empty_file(p);  // reports a refusing folder with its errno
    }
  });
}

// Rank 0 removes the temporary files of a failed export; never throws.
void remove_partials(const Comm& comm, const std::vector<fs::path>& partials) {
  if (comm.rank() != 0) return;
  for (const auto& p : partials) {
    try {
      detail::remove_file_if_exists(p);
    } catch (...) {
    }
  }
}

// Opens every temporary file on every rank (collective); a failure is thrown on every rank.
std::vector<detail::MpiFile> open_partials(const Comm& comm, const std::vector<fs::path>& partials) {
  std::vector<detail::MpiFile> handles;
  handles.reserve(partials.size());
  detail::run_agreed_or(
      comm, "export",
      [&] {
        for (const auto& partial : partials)
          handles.emplace_back(comm.get(), partial.string(), MPI_MODE_CREATE | MPI_MODE_WRONLY);
      },
      [&](const Failure&) { handles.clear(); });
  return handles;
}

// Writes every header (rank 0) and the chunks this rank owns, then syncs and closes every
// file. A failure is agreed before the collective sync and close (a rank whose read failed
// must not meet the others in a different collective call); the temporary files are then removed.
void write_partials(const Comm& comm, const Source& source, const ExportPlan& plan, const ExportOptions& options,
                    const std::vector<fs::path>& partials, std::vector<detail::MpiFile>& handles) {
  const int rank = comm.rank();
  std::uint64_t my_total = 0;
  for (std::size_t c = 0; c < plan.chunks.size(); ++c)
    if (plan.owner[c] == rank) my_total += plan.chunks[c].bytes;
  detail::run_agreed_or(
      comm, "export",
      [&] {
        if (rank == 0)
          for (std::size_t s = 0; s < partials.size(); ++s)
            handles[s].write_at(0, plan.headers[s].bytes.data(), plan.headers[s].bytes.size());
        write_owned_chunks(source, plan, rank, options, my_total, handles);
      },
      [&](const Failure&) {
        handles.clear();
        remove_partials(comm, partials);
      });
  detail::run_agreed_or(
      comm, "export",
      [&] {
        std::exception_ptr first;
        for (auto& handle : handles) {  // every rank syncs every file: collective
          try {
            handle.sync();
          } catch (...) {
            if (!first) first = std::current_exception();
          }
        }
        handles.clear();
        if (first) std::rethrow_exception(first);
      },
      [&](const Failure&) { remove_partials(comm, partials); });
}

}  // namespace

ExportResult export_safetensors(MPI_Comm user_comm, const fs::path& checkpoint, const std::string& group,
                                const fs::path& out, const ExportOptions& options) {
  const Comm comm(user_comm);
  if (out.empty()) throw UsageError("export: the output path is empty");  // the same on every rank

  // 1. Rank 0 reads the container's index; every rank gets the same plan.
  const Source source = decode_source(detail::agreed_from_rank0(
      comm, "export", [&] { return encode_source(read_source(checkpoint, group, options)); }));
  const OutputName name = output_name(out);
  const auto shards = split_into_shards(source.tensors, options.max_shard_size);
  const bool sharded = shards.size() > 1;
  ExportPlan plan =
      plan_export(source, shards, name.path, name.stem, export_metadata(source, options), options, comm.size());
  ExportResult& result = plan.result;

  // 2. Every shard's temporary file: created, written (header by rank 0, chunks by their
  // owners), synced and closed.
  const std::vector<fs::path> partials = partial_paths(result.files);
  create_partials(comm, source, name, result.files, sharded, partials);
  std::vector<detail::MpiFile> handles = open_partials(comm, partials);
  write_partials(comm, source, plan, options, partials, handles);

  // 3. Rank 0 renames every shard into place, then writes the index.
  detail::run_agreed_or(
      comm, "export",
      [&] {
        if (comm.rank() == 0) publish_export(source, shards, partials, name.path, name.stem, result);
      },
      [&](const Failure&) { remove_partials(comm, partials); });
  if (sharded) result.index = name.index();
  if (comm.rank() == 0 && options.progress) options.progress(result.tensor_bytes, result.tensor_bytes);
  detail::log_info("exported ", source.group, " of ", source.path, " to ", name.path.string(), ": ", result.tensors,
                   " tensors, ", result.tensor_bytes, " bytes in ", result.files.size(), " file(s)");
  return result;
}

}  // namespace ckptio
