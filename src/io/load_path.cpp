#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

#include "ckptio/error.hpp"
#include "core/asked_items.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "core/piece_math.hpp"
#include "core/write_plan.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "h5/index_codec.hpp"
#include "h5/library_lock.hpp"
#include "h5/running_state_codec.hpp"
#include "io/checkpoint_io_impl.hpp"
#include "io/fs_util.hpp"
#include "io/load_checks.hpp"
#include "io/local_tensors.hpp"
#include "io/log_format.hpp"
#include "io/retention.hpp"
#include "io/verified_read.hpp"
#include "mpi/agree.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::collect_local_tensors;
using detail::Comm;
using detail::Failure;
using detail::fixed;
using detail::human_bytes;
using detail::LocalTensor;
using detail::qualified;
using detail::run_agreed;
using detail::seconds_since;

namespace {

// Limits on metadata read from a file, so that a damaged length cannot exhaust memory.
constexpr std::uint64_t kMaxIndexBytes = 1ull << 30;
constexpr std::uint64_t kMaxRunningStateBytes = 1ull << 30;

std::string join_keys(const std::vector<KeyReport::Key>& keys) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(keys.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + qualified(keys[i].group, keys[i].name);
  if (keys.size() > shown) out += ", ... (" + std::to_string(keys.size() - shown) + " more)";
  return out;
}

}  // namespace

// Sends every piece of the read plan that several ranks asked for from the rank that read it
// to the others (point to point, in plan order, which every rank shares), except those that
// go over NCCL (`on_devices`); returns the bytes this rank received. Collective over comm.
template <class PieceMemory>
std::uint64_t send_replicas(const Comm& comm, const detail::WritePlan& plan, const detail::DevicePieces& on_devices,
                            PieceMemory&& piece_memory) {
  constexpr std::uint64_t kChunk = std::uint64_t{1} << 30;  // MPI counts are ints
  const int rank = comm.rank();
  std::vector<MPI_Request> pending;
  std::uint64_t received = 0;
  int tag = 0;
  for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti) {
    const auto& t = plan.tensors[ti];
    for (std::size_t pi = 0; pi < t.pieces.size(); ++pi) {
      const auto& p = t.pieces[pi];
      if (p.holders.size() < 2 || (!on_devices[ti].empty() && on_devices[ti][pi])) continue;
      tag = (tag + 1) % 32768;  // pairs exchange in plan order; MPI keeps that order per tag
      for (std::size_t h = 0; h < p.holders.size(); ++h) {
        const int holder = p.holders[h];
        const bool sending = p.writer == rank && holder != rank;
        const bool receiving = holder == rank && p.writer != rank;
        if (!sending && !receiving) continue;
        char* memory = sending ? piece_memory(p.writer_decl, p.writer_segment)
                               : piece_memory(p.holder_locations[h].first, p.holder_locations[h].second);
        for (std::uint64_t off = 0; off < p.bytes; off += kChunk) {
          const int count = static_cast<int>(std::min(kChunk, p.bytes - off));
          pending.emplace_back();
          if (sending)
            detail::check_mpi(MPI_Isend(memory + off, count, MPI_BYTE, holder, tag, comm.get(), &pending.back()),
                              "MPI_Isend of a replicated piece");
          else
            detail::check_mpi(MPI_Irecv(memory + off, count, MPI_BYTE, p.writer, tag, comm.get(), &pending.back()),
                              "MPI_Irecv of a replicated piece");
        }
        if (receiving) received += p.bytes;
      }
    }
  }
  detail::check_mpi(MPI_Waitall(static_cast<int>(pending.size()), pending.data(), MPI_STATUSES_IGNORE),
                    "MPI_Waitall for replicated pieces");
  return received;
}

namespace {

// One load of one file, phase by phase (each collective over comm and agreed): open the
// file and read its running state; check the keys; check each request against the file;
// plan and read the pieces and the rank blobs; send replicated pieces to their other holders.
struct FileLoad {
  const Comm& comm;
  const std::string file_name;
  const Snapshot& targets;
  const LoadOptions& options;
  const bool direct_io;  // read large pieces with O_DIRECT (CheckpointOptions::direct_io)
  std::optional<detail::h5::ContainerReader> reader;
  detail::h5::ContainerIndex index;
  LoadResult result;
  std::vector<LocalTensor> local;
  // The file's tensors as (hash of group and name, position in the index), sorted: one
  // allocation, where a hash map takes one per tensor. stored_group: each one's group (index
  // into kGroupNames).
  std::vector<std::pair<std::uint64_t, std::uint32_t>> stored;
  std::vector<std::uint8_t> stored_group;
  static std::uint64_t key_hash(int group, std::string_view name) {
    return detail::xxh3_64(name.data(), name.size()) ^ (static_cast<std::uint64_t>(group) * 0x9E3779B97F4A7C15ull);
  }
  // The stored tensor's position in the index, or -1.
  std::ptrdiff_t find_stored(int group, std::string_view name) const {
    const std::uint64_t h = key_hash(group, name);
    for (auto it = std::lower_bound(stored.begin(), stored.end(), std::make_pair(h, std::uint32_t{0}));
         it != stored.end() && it->first == h; ++it)
      if (stored_group[it->second] == group && index.tensors[it->second].name == name) return it->second;
    return -1;
  }
  std::vector<detail::StoredRequest> requests;  // this rank's pieces of stored tensors
  bool shared_requests = true;                  // some stored tensor is asked for by two ranks or more (check_keys)
  std::vector<const LocalTensor*> request_tensor;
  detail::WritePlan read_plan;

  FileLoad(const Comm& c, std::string file, const Snapshot& t, const LoadOptions& o, bool direct)
      : comm(c), file_name(std::move(file)), targets(t), options(o), direct_io(direct) {}
  [[noreturn]] void close_and_rethrow(const Failure& f) {
    try {
      reader->close();
    } catch (...) {
    }
    reader.reset();
    detail::rethrow(f);
  }
  template <class F>
  void agreed(F&& fn) {
    detail::run_agreed_or(comm, "load " + file_name, std::forward<F>(fn), [this](const Failure&) {
      try {
        if (reader) reader->close();
      } catch (...) {
      }
      reader.reset();
    });
  }
  char* piece_memory(int decl, int segment) const {
    const LocalTensor& t = *request_tensor[decl];
    return detail::writable_byte_pointer(t, t.segments[segment]);
  }

  void open();
  void check_keys();
  void check_requests();
  void read_pieces();
  void read_blobs();
};

void FileLoad::open() {
  detail::run_agreed(comm, "load " + file_name, [&] {
    local = collect_local_tensors(targets, comm.rank());
    reader.emplace(comm.get(), file_name);
    if (direct_io) reader->enable_direct_io();
    index = reader->read_index(kMaxIndexBytes);
    const std::string rs = reader->read_bytes(detail::h5::kRunningStateDataset, kMaxRunningStateBytes);
    if (rs.size() != index.running_state.bytes || detail::xxh3_64(rs.data(), rs.size()) != index.running_state.xxh3)
      throw IntegrityError(file_name + ": the running state does not match its checksum");
    result.running = detail::h5::decode_running_state(rs, file_name);
  });
  stored.reserve(index.tensors.size());
  stored_group.reserve(index.tensors.size());
  for (std::size_t i = 0; i < index.tensors.size(); ++i) {
    const auto& t = index.tensors[i];
    const int group = static_cast<int>(std::find(std::begin(kGroupNames), std::end(kGroupNames), t.group) -
                                       std::begin(kGroupNames));  // decode_index checked the group
    stored.emplace_back(key_hash(group, t.name), static_cast<std::uint32_t>(i));
    stored_group.push_back(static_cast<std::uint8_t>(group));
  }
  std::sort(stored.begin(), stored.end());
}

// Keys: what any rank asks for against what the file holds. Which stored tensors some rank
// asks for travels as one bit per tensor; only keys the file lacks travel as text.
void FileLoad::check_keys() {
  std::vector<std::uint64_t> asked((index.tensors.size() + 63) / 64, 0);
  std::string my_missing;
  for (const auto& t : local) {
    if (const std::ptrdiff_t i = find_stored(t.group, *t.name); i >= 0)
      asked[i / 64] |= std::uint64_t{1} << (i % 64);
    else
      my_missing += std::string(kGroupNames[t.group]) + "/" + *t.name + '\n';
  }
  // One reduction tells which stored tensors some rank asks for, and whether two ranks ask
  // for the same one (else every rank reads all it asks for: check_requests).
  std::vector<std::uint64_t> reduced = detail::asked_items_contribution(asked, comm.rank(), comm.size());
  comm.allreduce_bitwise_or(reduced);
  detail::AskedItems asked_by = detail::asked_items(reduced, asked.size(), comm.size());
  asked = std::move(asked_by.any);
  shared_requests = asked_by.any_shared();
  std::set<std::pair<std::string, std::string>> missing;
  for (const auto& keys : comm.allgather_bytes(my_missing)) {
    std::size_t pos = 0;
    while (pos < keys.size()) {
      const auto end = keys.find('\n', pos);
      const std::string key = keys.substr(pos, end - pos);
      const auto slash = key.find('/');
      missing.insert({key.substr(0, slash), key.substr(slash + 1)});
      pos = end + 1;
    }
  }
  // Which groups any rank asked for, as one bit each, in a single reduction.
  std::int64_t my_groups = 0;
  for (int g = 0; g < 3; ++g)
    if (targets.group(kGroupNames[g])) my_groups |= std::int64_t{1} << g;
  std::set<std::string> requested_groups;
  const std::int64_t any_groups = comm.allreduce_bitwise_or(my_groups);
  for (int g = 0; g < 3; ++g)
    if (any_groups & (std::int64_t{1} << g)) requested_groups.insert(kGroupNames[g]);
  for (const auto& key : missing) result.keys.missing.push_back({key.first, key.second});
  for (std::size_t i = 0; i < index.tensors.size(); ++i) {
    const auto& t = index.tensors[i];
    if (!(asked[i / 64] >> (i % 64) & 1) && requested_groups.count(t.group))
      result.keys.unexpected.push_back({t.group, t.name});
  }
  if (options.strict && !result.keys.clean()) {
    std::string message = file_name + ": state dict does not match the checkpoint (strict load)";
    if (!result.keys.missing.empty())
      message +=
          "; missing keys (" + std::to_string(result.keys.missing.size()) + "): " + join_keys(result.keys.missing);
    if (!result.keys.unexpected.empty())
      message += "; unexpected keys (" + std::to_string(result.keys.unexpected.size()) +
                 "): " + join_keys(result.keys.unexpected);
    // Every rank computed the same lists, so this is already agreed.
    close_and_rethrow(Failure{ErrorKind::Mismatch, detail::agreed_message(0, "load", message)});
  }
}

// Every request against the file first, so that no rank reads or exchanges pieces of a
// tensor that some rank cannot load; then the read plan: a piece that several ranks ask for
// (a replicated tensor) is read from the file once, by the asker with the fewest bytes to
// read so far, and sent to the others, so file reads do not grow with the number of replicas.
void FileLoad::check_requests() {
  const int rank = comm.rank();
  agreed([&] {
    for (const auto& t : local) {
      const std::ptrdiff_t position = find_stored(t.group, *t.name);
      if (position < 0) continue;  // reported as missing
      const auto& st = index.tensors[static_cast<std::size_t>(position)];
      // Built only for an error: at 100,000 tensors the text alone cost a planning step.
      const auto where = [&] {
        return file_name + ": tensor " + qualified(kGroupNames[t.group], *t.name) + " on rank " + std::to_string(rank);
      };
      if (st.dtype != t.shard->dtype)
        throw MismatchError(where() + ": requested as " + std::string(dtype_name(t.shard->dtype)) + " but stored as " +
                            std::string(dtype_name(st.dtype)));
      if (st.shape != t.shard->global_shape)
        throw MismatchError(where() + ": requested with global shape " +
                            detail::shape_to_string(t.shard->global_shape) + " but stored with " +
                            detail::shape_to_string(st.shape));
      detail::StoredRequest q{static_cast<std::uint32_t>(position), {}};
      q.segments.reserve(t.segments.size());
      for (const auto& seg : t.segments) q.segments.push_back(seg.block);
      requests.push_back(std::move(q));
      request_tensor.push_back(&t);
    }
  });
  const auto describe = [&](std::size_t i, detail::PlannedTensor& t) {
    t.group = stored_group[i];
    t.dtype = index.tensors[i].dtype;
  };
  // No stored tensor asked for by two ranks (each rank holds whole tensors of its own, as
  // in expert parallelism; decided alike on every rank): each rank reads every piece it
  // asked for and sends none, so its plan is its own and no requests travel.
  if (!shared_requests) {
    agreed([&] {
      std::vector<std::vector<detail::StoredRequest>> only_mine(comm.size());
      only_mine[rank] = std::move(requests);
      read_plan = detail::make_read_plan(only_mine, index.tensors.size(), describe);
    });
    return;
  }
  // Tensors travel as their positions in the index, which every rank decoded alike.
  const auto gathered = comm.allgather_bytes(detail::encode_stored_requests(requests));
  agreed([&] {
    std::vector<std::vector<detail::StoredRequest>> all;
    all.reserve(gathered.size());
    for (const auto& bytes : gathered) all.push_back(detail::decode_stored_requests(bytes, index.tensors.size()));
    read_plan = detail::make_read_plan(all, index.tensors.size(), describe);
  });
}

void FileLoad::read_pieces() {
  const int rank = comm.rank();
  detail::fault_point("load.read", rank);
  {
    // Small pieces are read together, a window of the file at a time.
    std::vector<detail::h5::ContainerReader::BlockRequest> mine;
    for (const auto& t : read_plan.tensors)
      for (const auto& p : t.pieces)
        if (p.writer == rank) {
          mine.push_back({&index.tensors[t.stored], &p.block});
        }
    reader->plan_reads(mine);
  }
  for (const auto& t : read_plan.tensors)
    for (const auto& p : t.pieces) {
      if (p.writer != rank) continue;
      char* out = piece_memory(p.writer_decl, p.writer_segment);
      const auto& st = index.tensors[t.stored];
      if (options.verify)
        detail::read_block_verified(*reader, file_name, st, index.chunk_bytes, p.block, out);
      else
        reader->read_stored_block(st, p.block, out);
    }
}

// Per-rank blobs: restored per rank when the world size matches, else all handed back.
void FileLoad::read_blobs() {
  result.saved_world_size = index.world_size;
  const auto offsets =
      reader->read_u64(detail::h5::kRankBlobOffsetsDataset, static_cast<std::uint64_t>(index.world_size) + 1);
  const std::uint64_t blob_total = reader->dataset_elements(detail::h5::kRankBlobsDataset);
  if (offsets.size() != static_cast<std::size_t>(index.world_size) + 1 || offsets.front() != 0 ||
      offsets.back() != blob_total || !std::is_sorted(offsets.begin(), offsets.end()))
    throw FormatError(file_name + ": the rank blob offsets table is inconsistent");
  auto read_blob = [&](int r) {
    const std::string b =
        reader->read_bytes_range(detail::h5::kRankBlobsDataset, offsets[r], offsets[r + 1] - offsets[r]);
    if (b.size() != index.rank_blobs[r].bytes || detail::xxh3_64(b.data(), b.size()) != index.rank_blobs[r].xxh3)
      throw IntegrityError(file_name + ": the blob of saving rank " + std::to_string(r) +
                           " does not match its checksum");
    return std::vector<std::uint8_t>(b.begin(), b.end());
  };
  if (index.world_size == comm.size()) {
    result.rank_blob = read_blob(comm.rank());
  } else {
    for (int r = 0; r < index.world_size; ++r) result.saved_rank_blobs.push_back(read_blob(r));
  }
}

}  // namespace

LoadResult CheckpointIO::Impl::load_file(const fs::path& file, const Snapshot& targets, const LoadOptions& options,
                                         const Snapshot* device_targets) {
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  const auto start = std::chrono::steady_clock::now();
  FileLoad load(comm, file.string(), targets, options, this->options.direct_io.value_or(true));
  load.result.path = load.file_name;
  detail::PhaseTimes phases;  // for the debug log
  load.open();
  phases.done("open and index");
  load.check_keys();
  phases.done("keys");
  load.check_requests();
  phases.done("plan");
  load.agreed([&] {
    load.read_pieces();
    load.read_blobs();
  });
  detail::run_agreed(comm, "load: close " + load.file_name, [&] { load.reader->close(); });
  load.reader.reset();
  phases.done("read");
  LoadResult& result = load.result;
  result.bytes_read = load.read_plan.bytes_per_rank[comm.rank()];
  exchange_replicas(load.read_plan, load.request_tensor, targets, device_targets, result);
  phases.done("replicas");
  detail::log_debug("load ", load.file_name, ": ", load.index.tensors.size(),
                    " tensors; seconds per phase: ", phases.text());
  log_load(load.file_name, load.index.world_size, seconds_since(start), result);
  return std::move(result);
}

// Replicated pieces between device shards go from device to device over NCCL, after the
// readers' copies reached their devices; the others over MPI in host memory first.
void CheckpointIO::Impl::exchange_replicas(const detail::WritePlan& read_plan,
                                           const std::vector<const LocalTensor*>& request_tensor,
                                           const Snapshot& targets, const Snapshot* device_targets,
                                           LoadResult& result) {
  std::vector<int> request_devices;
  std::vector<const TensorShard*> device_shards;
  for (const LocalTensor* t : request_tensor) {
    const TensorShard* d = device_targets ? device_targets->group(kGroupNames[t->group])->find(*t->name) : nullptr;
    device_shards.push_back(d);
    request_devices.push_back(d ? d->device : kHostMemory);
  }
  const detail::DevicePieces on_devices = detail::plan_device_replicas(comm, nccl, read_plan, request_devices);
  result.bytes_received = send_replicas(comm, read_plan, on_devices, [&](int decl, int segment) {
    const LocalTensor& t = *request_tensor[decl];
    return detail::writable_byte_pointer(t, t.segments[segment]);
  });
  if (!detail::cuda::device_supported()) return;  // the same on every rank
  run_agreed(comm, "load: copy tensors to device memory", [&] {
    if (device_targets) device_staging.copy_to_device(*device_targets, targets);
  });
  // Pieces go over NCCL only when every rank loads into device memory.
  result.bytes_received_nccl =
      detail::send_device_replicas(comm, nccl, read_plan, on_devices, [&](int decl, int segment) {
        const LocalTensor& t = *request_tensor[decl];
        return static_cast<char*>(device_shards[decl]->data.writable()) +
               static_cast<std::size_t>(t.segments[segment].memory_offset) * dtype_size(t.shard->dtype);
      });
  result.bytes_received += result.bytes_received_nccl;
}

void CheckpointIO::Impl::log_load(const std::string& file_name, int saved_world_size, double local_seconds,
                                  const LoadResult& result) {
  const double seconds = comm.allreduce_max(local_seconds);
  const auto read_total = static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_read)));
  const auto received_total = static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_received)));
  const auto nccl_total =
      detail::cuda::nccl_supported()
          ? static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_received_nccl)))
          : 0.0;
  detail::log_info("loaded ", file_name, " (global_step ", result.running.global_step, ", saved by ", saved_world_size,
                   " ranks, loaded by ", comm.size(), ") in ", fixed(seconds, 3), " s; read ", human_bytes(read_total),
                   " from the file, ", human_bytes(received_total), " of replicas from other ranks",
                   nccl_total > 0 ? " (" + human_bytes(nccl_total) + " of them over NCCL)" : std::string());
}

std::vector<std::string> CheckpointIO::Impl::load_candidates() {
  const std::string encoded = detail::agreed_from_rank0(comm, "load_latest", [&] {
    std::string names;
    for (const auto& name : detail::load_order(root)) names += name + '\n';
    return names;
  });
  std::vector<std::string> names;
  for (std::size_t pos = 0; pos < encoded.size();) {
    const auto end = encoded.find('\n', pos);
    names.push_back(encoded.substr(pos, end - pos));
    pos = end + 1;
  }
  return names;
}

}  // namespace ckptio
