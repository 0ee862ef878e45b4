#include "ckptio/checkpoint_io.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/version.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "core/piece_checksum.hpp"
#include "core/piece_math.hpp"
#include "core/write_plan.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "h5/container_writer.hpp"
#include "h5/index_codec.hpp"
#include "h5/library_lock.hpp"
#include "h5/running_state_codec.hpp"
#include "io/background_save.hpp"
#include "io/device_replicas.hpp"
#include "io/fs_util.hpp"
#include "io/load_checks.hpp"
#include "io/retention.hpp"
#include "io/root_lock.hpp"
#include "io/save_export.hpp"
#include "io/staging_pool.hpp"
#include "io/verified_read.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::agree_failure;
using detail::Comm;
using detail::Failure;
using detail::run_agreed;

namespace {

// Limits on metadata read from a file, so that a damaged length cannot exhaust memory.
constexpr std::uint64_t kMaxIndexBytes = 1ull << 30;
constexpr std::uint64_t kMaxRunningStateBytes = 1ull << 30;

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string fixed(double value, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string qualified(const std::string& group, const std::string& name) { return group + "/" + name; }

// A rank's own tensors, flattened over the groups, in the order they are declared.
struct LocalTensor {
  int group;
  const std::string* name;
  const TensorShard* shard;
  std::vector<detail::Segment> segments;
};

// Device shards reach the HDF5 code only as host copies (StagingPool); `allow_device`
// accepts them where the caller stages them next, in a build with CUDA.
std::vector<LocalTensor> collect_local_tensors(const Snapshot& snapshot, int rank, const char* operation,
                                               bool allow_device = false) {
  std::vector<LocalTensor> out;
  for (int g = 0; g < 3; ++g) {
    const auto& dict = snapshot.group(kGroupNames[g]);
    if (!dict) continue;
    for (const auto& [name, shard] : *dict) {
      const std::string where = qualified(kGroupNames[g], name);
      if (shard.device < kHostMemory)
        throw UsageError(std::string(operation) + " tensor " + where + " on rank " + std::to_string(rank) +
                         ": device " + std::to_string(shard.device) + " is neither a CUDA device ordinal (>= 0) nor " +
                         "kHostMemory (-1)");
      if (shard.device != kHostMemory && allow_device && detail::cuda::device_supported() &&
          shard.device >= detail::cuda::device_count())
        throw UsageError(std::string(operation) + " tensor " + where + " on rank " + std::to_string(rank) +
                         ": CUDA device " + std::to_string(shard.device) + " is not usable in this process (it sees " +
                         std::to_string(detail::cuda::device_count()) + " CUDA devices)");
      if (shard.device != kHostMemory && !(allow_device && detail::cuda::device_supported()))
        throw UsageError(std::string(operation) + " tensor " + where + " on rank " + std::to_string(rank) +
                         ": device memory (CUDA device " + std::to_string(shard.device) +
                         ") is not supported by this build; pass host memory");
      if (auto problem = detail::piece_problem(shard); !problem.empty())
        throw UsageError(std::string(operation) + " tensor " + where + " on rank " + std::to_string(rank) + ": " +
                         problem);
      out.push_back(LocalTensor{g, &name, &shard, detail::segments_of(shard)});
    }
  }
  return out;
}

const char* byte_pointer(const LocalTensor& t, const detail::Segment& s) {
  return static_cast<const char*>(t.shard->data.get()) +
         static_cast<std::size_t>(s.memory_offset) * dtype_size(t.shard->dtype);
}

// The JSON fields of the running state, hashed separately so that a mismatch across
// ranks can name the field.
std::string running_state_fingerprint(const RunningState& s) {
  const std::string parts[] = {std::to_string(s.epoch), std::to_string(s.step), std::to_string(s.global_step),
                               s.lr_scheduler.dump(),   s.sampler.dump(),       s.extras.dump()};
  std::string out;
  for (const auto& p : parts) {
    const std::uint64_t h = detail::xxh3_64(p.data(), p.size());
    out.append(reinterpret_cast<const char*>(&h), sizeof h);
  }
  return out;
}

void check_running_state_agrees(const Comm& comm, const RunningState& state) {
  static const char* const kFields[] = {"epoch", "step", "global_step", "lr_scheduler", "sampler", "extras"};
  const auto all = comm.allgather_bytes(running_state_fingerprint(state));
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] == all[0]) continue;
    for (int f = 0; f < 6; ++f)
      if (std::memcmp(all[r].data() + 8 * f, all[0].data() + 8 * f, 8) != 0)
        throw MismatchError(std::string("running state field '") + kFields[f] + "' differs between rank 0 and rank " +
                            std::to_string(r) + "; it must be the same on every rank");
  }
}

// The file layout and MPI-IO hints asked for by the options and CKPTIO_MPIIO_HINTS.
detail::h5::FileTuning file_tuning(const CheckpointOptions& options) {
  detail::h5::FileTuning tuning;
  tuning.mpi_io_hints = options.mpi_io_hints;
  if (const char* env = std::getenv("CKPTIO_MPIIO_HINTS")) {
    std::string spec = env;
    for (std::size_t pos = 0; pos < spec.size();) {
      std::size_t end = spec.find(',', pos);
      if (end == std::string::npos) end = spec.size();
      const std::string item = spec.substr(pos, end - pos);
      const std::size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        throw UsageError("CKPTIO_MPIIO_HINTS: '" + item + "' is not key=value (expected key=value,key=value)");
      tuning.mpi_io_hints[item.substr(0, eq)] = item.substr(eq + 1);
      pos = end + 1;
    }
  }
  tuning.alignment = options.alignment;
  tuning.alignment_threshold = options.alignment;
  tuning.direct_io = options.direct_io;
  if (const char* env = std::getenv("CKPTIO_DIRECT_IO")) {
    const std::string value = env;
    if (value == "1")
      tuning.direct_io = true;
    else if (value == "0")
      tuning.direct_io = false;
    else
      throw UsageError("CKPTIO_DIRECT_IO: '" + value + "' is not 0 or 1");
  }
  // Direct writes of a piece whose file address and memory address differ modulo 4 KiB go
  // through a bounce buffer, a copy of every byte. Unless asked otherwise, large datasets
  // start on a 4 KiB boundary, so that save_async's page-aligned staging is written straight
  // from memory (its background CPU fell from 0.47 to 0.30 core-seconds per GiB; see
  // docs/PERFORMANCE.md). Costs at most 4 KiB of padding per dataset of 1 MiB or more.
  if (tuning.direct_io && tuning.alignment == 0) {
    tuning.alignment = 4096;
    tuning.alignment_threshold = std::uint64_t{1} << 20;
  }
  return tuning;
}

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

struct CheckpointIO::Impl {
  Comm comm;
  // Declared after comm, so destroyed before it.
  detail::NcclState nccl;
  fs::path root;
  CheckpointOptions options;
  detail::RootLock lock;  // held by rank 0
  // Durations of the last saves, newest last, from the call to the commit (an asynchronous
  // save's background part included); written by the I/O thread too.
  mutable std::mutex save_seconds_mutex;
  std::deque<double> save_seconds;
  void record_save_seconds(double seconds);

  // Asynchronous saves: a twin on its own duplicate of the communicator (so that its
  // collectives never mix with this thread's), the staging copy, and the thread.
  std::unique_ptr<Impl> twin;
  detail::StagingPool staging;
  // Host copies of shards in device memory, for synchronous saves and loads.
  detail::StagingPool device_staging;
  std::unique_ptr<detail::BackgroundSave> background;
  std::atomic<double> last_save_seconds{0.0};
  std::atomic<std::int64_t> in_flight_since_ns{0};  // steady_clock; 0 when none

  ~Impl();
  void wait_for_background();
  fs::path save_async(const Snapshot& snapshot);
  fs::path save_from_any_memory(const Snapshot& snapshot);
  LoadResult load_into_any_memory(const fs::path& file, const Snapshot& targets, const LoadOptions& options);
  fs::path save(const Snapshot& snapshot);
  // `device_targets`: for a load into device memory, the caller's targets, of which `targets`
  // holds host copies (StagingPool::host_targets); copied to the devices at the end.
  LoadResult load_file(const fs::path& file, const Snapshot& targets, const LoadOptions& options,
                       const Snapshot* device_targets = nullptr);
  fs::path resolve(const fs::path& path);
  std::vector<std::string> load_candidates();
  void prune_and_clean(const std::string& committed_name);
};

CheckpointIO::CheckpointIO(MPI_Comm comm, fs::path root, CheckpointOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->comm = Comm(comm);
  impl_->options = options;
  impl_->staging.set_huge_pages(options.staging_huge_pages);
  impl_->root = fs::absolute(root).lexically_normal();
  if (impl_->root.has_filename() == false) impl_->root = impl_->root.parent_path();
  run_agreed(impl_->comm, "open checkpoint root", [&] {
    if (options.keep_last < 0) throw UsageError("keep_last must be >= 0 (0 keeps every checkpoint)");
    if (impl_->comm.rank() != 0) return;
    std::error_code ec;
    fs::create_directories(impl_->root, ec);
    if (ec) throw IoError("cannot create checkpoint root " + impl_->root.string() + ": " + ec.message());
    if (!fs::is_directory(impl_->root)) throw IoError("checkpoint root " + impl_->root.string() + " is not a folder");
    if (options.lock_root) impl_->lock = detail::RootLock(impl_->root);
  });
}

CheckpointIO::Impl::~Impl() {
  // The thread uses twin and staging: it must end before they are destroyed.
  background.reset();
}

CheckpointIO::~CheckpointIO() = default;

const fs::path& CheckpointIO::root() const { return impl_->root; }
double CheckpointIO::recent_save_seconds() const noexcept {
  double longest = in_flight_seconds();  // a save still running takes at least this long
  const std::lock_guard lock(impl_->save_seconds_mutex);
  for (double s : impl_->save_seconds) longest = std::max(longest, s);
  return longest;
}

void CheckpointIO::Impl::record_save_seconds(double seconds) {
  last_save_seconds = seconds;
  const std::lock_guard lock(save_seconds_mutex);
  save_seconds.push_back(seconds);
  if (save_seconds.size() > 3) save_seconds.pop_front();
}
int CheckpointIO::rank() const { return impl_->comm.rank(); }
int CheckpointIO::world_size() const { return impl_->comm.size(); }

std::string checkpoint_file_name(std::int64_t epoch, std::int64_t global_step) {
  return "epoch" + std::to_string(epoch) + "-global_step" + std::to_string(global_step) + ".h5";
}

fs::path CheckpointIO::save(const Snapshot& snapshot) {
  impl_->wait_for_background();
  const auto start = std::chrono::steady_clock::now();
  fs::path path = impl_->save_from_any_memory(snapshot);
  impl_->record_save_seconds(seconds_since(start));
  return path;
}

// A build with CUDA copies device shards to host memory first (HDF5 reads host memory only);
// collective like save. Without CUDA, save() itself refuses device shards clearly.
fs::path CheckpointIO::Impl::save_from_any_memory(const Snapshot& snapshot) {
  if (!detail::cuda::device_supported()) return save(snapshot);
  Snapshot host_copy;
  bool staged = false;
  run_agreed(comm, "save: copy device tensors to host", [&] {
    if (!detail::StagingPool::has_device_shards(snapshot)) return;
    collect_local_tensors(snapshot, comm.rank(), "save:", true);  // validate before copying
    host_copy = device_staging.stage(snapshot, detail::StagingPool::Shards::DeviceOnly);
    staged = true;
  });
  return save(staged ? host_copy : snapshot);
}

// Loads into host buffers for the device shards, then copies them to the devices (in
// load_file, which sends replicated pieces between devices over NCCL where it can).
LoadResult CheckpointIO::Impl::load_into_any_memory(const fs::path& file, const Snapshot& targets,
                                                    const LoadOptions& load_options) {
  if (!detail::cuda::device_supported()) return load_file(file, targets, load_options);
  Snapshot host_targets;
  bool staged = false;
  run_agreed(comm, "load: prepare host buffers for device tensors", [&] {
    if (!detail::StagingPool::has_device_shards(targets)) return;
    collect_local_tensors(targets, comm.rank(), "load:", true);
    host_targets = device_staging.host_targets(targets);
    staged = true;
  });
  return load_file(file, staged ? host_targets : targets, load_options, staged ? &targets : nullptr);
}

fs::path CheckpointIO::save_async(const Snapshot& snapshot) { return impl_->save_async(snapshot); }

void CheckpointIO::wait() { impl_->wait_for_background(); }

bool CheckpointIO::save_in_flight() const { return impl_->background && impl_->background->pending(); }

double CheckpointIO::in_flight_seconds() const {
  const std::int64_t since = impl_->in_flight_since_ns;
  if (since == 0) return 0.0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch() -
                                       std::chrono::nanoseconds(since))
      .count();
}

double CheckpointIO::last_save_seconds() const { return impl_->last_save_seconds; }

std::uint64_t CheckpointIO::staging_bytes() const { return impl_->staging.capacity(); }

void CheckpointIO::reserve_staging(std::uint64_t bytes) {
  impl_->wait_for_background();  // the save in flight reads the pool
  run_agreed(impl_->comm, "reserve_staging", [&] { impl_->staging.reserve(bytes); });
}

void CheckpointIO::reserve_staging(const Snapshot& snapshot) {
  reserve_staging(detail::StagingPool::bytes_needed(snapshot, detail::StagingPool::Shards::All));
}

void CheckpointIO::Impl::wait_for_background() {
  if (background) background->wait();
}

fs::path CheckpointIO::Impl::save_async(const Snapshot& snapshot) {
  wait_for_background();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t needed = 0;
  run_agreed(comm, "save_async", [&] {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_MULTIPLE)
      throw UsageError(
          "save_async needs MPI_THREAD_MULTIPLE: initialise MPI with MPI_Init_thread(&argc, &argv, "
          "MPI_THREAD_MULTIPLE, &provided) and check `provided`");
    collect_local_tensors(snapshot, comm.rank(), "save_async:", true);  // refuses bad pieces
    needed = detail::StagingPool::bytes_needed(snapshot, detail::StagingPool::Shards::All);
  });
  const auto most_needed = static_cast<std::uint64_t>(comm.allreduce_max(static_cast<std::int64_t>(needed)));
  if (options.max_staging_bytes > 0 && most_needed > options.max_staging_bytes) {
    detail::log_warn("save_async: staging would take ", human_bytes(static_cast<double>(most_needed)),
                     " on some rank, over max_staging_bytes (",
                     human_bytes(static_cast<double>(options.max_staging_bytes)), "); saving synchronously instead");
    fs::path path = save_from_any_memory(snapshot);
    record_save_seconds(seconds_since(start));
    return path;
  }
  if (!twin) {
    // HDF5 registers its MPI_Finalize hook at initialisation: initialise it before
    // registering ours, so that ours runs first and joins the thread while HDF5 still works.
    detail::h5::initialise_library();
    detail::BackgroundSave::register_finalize_hook();
    twin = std::make_unique<Impl>();
    twin->comm = Comm(comm.get());
    twin->root = root;
    twin->options = options;
    background = std::make_unique<detail::BackgroundSave>();
  }
  const double check_seconds = seconds_since(start);
  Snapshot staged;
  double reserve_seconds = 0;
  run_agreed(comm, "save_async: stage", [&] {
    const auto reserve_start = std::chrono::steady_clock::now();
    staging.reserve(needed);  // allocates and faults in only when the pool grows
    reserve_seconds = seconds_since(reserve_start);
    staged = staging.stage(snapshot, detail::StagingPool::Shards::All);
  });
  const double staging_seconds = seconds_since(start);
  in_flight_since_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
  background->start([this, staged = std::move(staged), start] {
    try {
      twin->save(staged);
    } catch (...) {
      in_flight_since_ns = 0;
      throw;
    }
    record_save_seconds(seconds_since(start));
    in_flight_since_ns = 0;
  });
  detail::log_debug("save_async: staged ", human_bytes(static_cast<double>(needed)), " in ", fixed(staging_seconds, 3),
                    " s (checks and agreement ", fixed(check_seconds, 3), " s, growing the pool ",
                    fixed(reserve_seconds, 3), " s, copy and agreement ",
                    fixed(staging_seconds - check_seconds - reserve_seconds, 3), " s); writing in the background");
  return root / checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
}

fs::path CheckpointIO::Impl::save(const Snapshot& snapshot) {
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  const auto start = std::chrono::steady_clock::now();
  const int rank = comm.rank();

  // 1. Plan: describe this rank's shards, gather every rank's, decide the writers.
  std::vector<LocalTensor> local;
  std::vector<detail::TensorDecl> decls;
  std::string running_json;
  run_agreed(comm, "save", [&] {
    const RunningState& rs = snapshot.running;
    if (rs.epoch < 0 || rs.step < 0 || rs.global_step < 0) throw UsageError("epoch, step and global_step must be >= 0");
    local = collect_local_tensors(snapshot, rank, "save:");
    for (const auto& t : local) {
      detail::TensorDecl d{t.group, *t.name, t.shard->dtype, t.shard->global_shape, {}};
      for (const auto& s : t.segments) d.segments.push_back(s.block);
      decls.push_back(std::move(d));
    }
    running_json = detail::h5::encode_running_state(rs);
  });
  const auto gathered = comm.allgather_bytes(detail::encode_decls(decls));
  detail::WritePlan plan;
  run_agreed(comm, "save", [&] {
    check_running_state_agrees(comm, snapshot.running);
    std::vector<std::vector<detail::TensorDecl>> all;
    all.reserve(gathered.size());
    for (const auto& g : gathered) all.push_back(detail::decode_decls(g));
    plan = detail::make_write_plan(all);
  });
  detail::fault_point("save.plan", rank);

  const std::string name = checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
  const fs::path final_path = root / name;
  const fs::path partial = final_path.string() + ".partial";
  // Provenance is taken from rank 0 so that every rank writes the same attributes.
  std::string provenance = detail::host_name() + "\n" + detail::iso_time_now();
  comm.bcast_bytes(provenance, 0);
  run_agreed(comm, "save", [&] {
    if (rank != 0) return;
    detail::remove_file_if_exists(partial);  // a stale one from a crashed save
    detail::create_empty_file(partial);      // a refusing folder reported with its errno
  });

  // 2. Create the container and its datasets (collective).
  std::optional<detail::h5::ContainerWriter> writer;
  std::vector<detail::h5::DatasetSpec> specs;
  for (const auto& t : plan.tensors) specs.push_back({kGroupNames[t.group], t.name, t.dtype, t.shape});
  auto abort_save = [&](const Failure& failure) {
    try {
      if (writer) writer->close();
    } catch (...) {
    }
    writer.reset();
    if (rank == 0) {
      try {
        detail::remove_file_if_exists(partial);
      } catch (...) {
      }
    }
    detail::log_warn("save of ", name, " failed; ", partial.filename().string(), " removed, `latest` unchanged");
    detail::rethrow(failure);
  };
  {
    std::optional<Failure> create_failure;
    try {
      writer.emplace(comm.get(), partial.string(), file_tuning(options));
      writer->create_datasets(specs);
    } catch (...) {
      create_failure = detail::capture_current_exception();
    }
    if (auto f = agree_failure(comm, create_failure, "save: create " + partial.string())) abort_save(*f);
  }

  // Reserve the file's space before writing a byte, so that a full disk is one early,
  // agreed error instead of a failure inside a collective HDF5 write or close.
  // The file's size: every tensor's data, plus a generous estimate of HDF5's object headers
  // and of the metadata datasets.
  std::uint64_t file_estimate = (1u << 20) + running_json.size();
  for (const auto& t : plan.tensors) {
    file_estimate += static_cast<std::uint64_t>(detail::element_count(t.shape)) * dtype_size(t.dtype);
    file_estimate += 2048 + 2 * t.name.size();
    for (const auto& p : t.pieces) file_estimate += 160 + 20 * (p.bytes / detail::kChecksumChunkBytes);
  }
  file_estimate += static_cast<std::uint64_t>(comm.allreduce_sum(static_cast<std::int64_t>(snapshot.rank_blob.size())));
  std::uint64_t reserved = 0;
  {
    std::optional<Failure> reserve_failure;
    try {
      reserved = file_estimate;
      if (rank == 0) detail::reserve_file_space(partial, reserved);
    } catch (...) {
      reserve_failure = detail::capture_current_exception();
    }
    if (auto f = agree_failure(comm, reserve_failure, "save: reserve space for " + partial.string())) abort_save(*f);
  }

  // 3. Write this rank's pieces (independent transfers), checksumming each.
  std::string my_checksums;  // per piece, u64s: tensor, piece, xxh3, n, n chunk checksums
  std::optional<Failure> failure;
  try {
    detail::fault_point("save.write", rank);
    for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti) {
      const auto& t = plan.tensors[ti];
      for (std::size_t pi = 0; pi < t.pieces.size(); ++pi) {
        const auto& p = t.pieces[pi];
        if (p.writer != rank) continue;
        const LocalTensor& lt = local[p.writer_decl];
        const char* data = byte_pointer(lt, lt.segments[p.writer_segment]);
        writer->write_block(ti, p.block, data);
        const auto sums = detail::checksum_piece(data, p.bytes, detail::kChecksumChunkBytes);
        const std::uint64_t head[4] = {ti, pi, sums.whole, sums.chunks.size()};
        my_checksums.append(reinterpret_cast<const char*>(head), sizeof head);
        if (!sums.chunks.empty())
          my_checksums.append(reinterpret_cast<const char*>(sums.chunks.data()), sums.chunks.size() * 8);
      }
    }
    writer->flush_blocks();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: write " + partial.string())) abort_save(*f);

  // 4. Index, running state and rank blobs.
  detail::h5::ContainerIndex index;
  index.world_size = comm.size();
  for (const auto& t : plan.tensors) {
    detail::h5::IndexTensor it{kGroupNames[t.group], t.name, t.dtype, t.shape, {}};
    for (const auto& p : t.pieces) it.pieces.push_back({p.block, p.writer, 0, {}});
    index.tensors.push_back(std::move(it));
  }
  index.chunk_bytes = detail::kChecksumChunkBytes;
  for (const auto& bytes : comm.allgather_bytes(my_checksums)) {
    for (std::size_t off = 0; off + 32 <= bytes.size();) {
      std::uint64_t head[4];
      std::memcpy(head, bytes.data() + off, sizeof head);
      auto& piece = index.tensors[head[0]].pieces[head[1]];
      piece.xxh3 = head[2];
      piece.chunks.resize(head[3]);
      if (head[3]) std::memcpy(piece.chunks.data(), bytes.data() + off + 32, head[3] * 8);
      off += 32 + head[3] * 8;
    }
  }
  index.running_state = {running_json.size(), detail::xxh3_64(running_json.data(), running_json.size())};
  const auto& blob = snapshot.rank_blob;
  std::uint64_t my_blob_meta[2] = {blob.size(), detail::xxh3_64(blob.data(), blob.size())};
  std::vector<std::uint64_t> blob_offsets(1, 0);
  for (const auto& m : comm.allgather_bytes(std::string(reinterpret_cast<const char*>(my_blob_meta), 16))) {
    std::uint64_t meta[2];
    std::memcpy(meta, m.data(), 16);
    index.rank_blobs.push_back({meta[0], meta[1]});
    blob_offsets.push_back(blob_offsets.back() + meta[0]);
  }
  const std::string index_json = detail::h5::encode_index(index);

  namespace fmt = detail::h5;
  run_agreed(comm, "save: write metadata of " + partial.string(), [&] {
    writer->create_bytes_dataset(fmt::kIndexDataset, index_json.size());
    writer->create_bytes_dataset(fmt::kRunningStateDataset, running_json.size());
    writer->create_bytes_dataset(fmt::kRankBlobsDataset, blob_offsets.back());
    writer->create_u64_dataset(fmt::kRankBlobOffsetsDataset, blob_offsets.size());
    const auto newline = provenance.find('\n');
    writer->write_root_attributes({kVersion, provenance.substr(newline + 1), provenance.substr(0, newline), comm.size(),
                                   snapshot.running.epoch, snapshot.running.step, snapshot.running.global_step,
                                   detail::to_hex64(detail::xxh3_64(index_json.data(), index_json.size()))});
  });
  failure.reset();
  try {
    if (rank == 0) {
      writer->write_bytes(fmt::kIndexDataset, 0, index_json.data(), index_json.size());
      writer->write_bytes(fmt::kRunningStateDataset, 0, running_json.data(), running_json.size());
      writer->write_u64(fmt::kRankBlobOffsetsDataset, blob_offsets);
    }
    writer->write_bytes(fmt::kRankBlobsDataset, blob_offsets[rank], blob.data(), blob.size());
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: write metadata of " + partial.string())) abort_save(*f);

  failure.reset();
  try {
    writer->close();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  writer.reset();
  if (auto f = agree_failure(comm, failure, "save: close " + partial.string())) abort_save(*f);
  detail::fault_point("save.after_writes", rank);

  // 5. Durability: every rank that wrote data flushes its part of the file.
  failure.reset();
  try {
    if (rank == 0) detail::release_reserved_space(partial, reserved);
    if (rank == 0 || plan.bytes_per_rank[rank] > 0 || !blob.empty()) detail::fsync_path(partial);
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: fsync " + partial.string())) abort_save(*f);

  // 5b. Export at save time: written and renamed into place before the commit.
  if (!options.export_safetensors.empty()) {
    failure.reset();
    try {
      detail::export_at_save(comm, partial, options.export_safetensors,
                             root / detail::save_export_name(snapshot.running.epoch, snapshot.running.global_step,
                                                             options.export_safetensors),
                             options.export_dtype);
    } catch (...) {
      failure = detail::capture_current_exception();
    }
    if (failure) abort_save(*failure);  // export_safetensors already agreed on the failure
  }

  // 6. Commit: rename into place, then point `latest` at it.
  detail::fault_point("save.commit", rank);
  failure.reset();
  try {
    if (rank == 0) {
      detail::rename_path(partial, final_path);
      detail::fsync_directory(root);
      detail::fault_point("save.latest", rank);
      detail::atomic_write_file(root / "latest", name + "\n");
    }
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: commit " + final_path.string())) {
    if (rank == 0) {
      try {
        detail::remove_file_if_exists(partial);
      } catch (...) {
      }
    }
    detail::rethrow(*f);
  }

  // 7. Retention: only after the commit, and never fatal.
  detail::fault_point("save.prune", rank);
  if (rank == 0) prune_and_clean(name);

  std::uint64_t total_bytes = 0;
  for (auto b : plan.bytes_per_rank) total_bytes += b;
  const double seconds = comm.allreduce_max(seconds_since(start));
  detail::log_info("saved ", final_path.string(), ": ", plan.tensors.size(), " tensors, ", human_bytes(total_bytes),
                   " in ", fixed(seconds, 3), " s (", fixed(seconds > 0 ? total_bytes / seconds / 1e9 : 0.0, 2),
                   " GB/s)");
  return final_path;
}

void CheckpointIO::Impl::prune_and_clean(const std::string& committed_name) {
  try {
    const auto victims = detail::checkpoints_to_prune(root, options.keep_last, committed_name);
    for (const auto& victim : victims) {
      detail::log_info("pruning ", victim.string(), " (keep_last=", options.keep_last, ")");
      detail::remove_file_if_exists(victim);
    }
    for (const auto& file : detail::exports_to_remove(root, victims)) {
      detail::log_info("pruning ", file.string());
      detail::remove_file_if_exists(file);
    }
    for (const auto& stale : detail::stale_partials(root)) {
      detail::log_info("removing stale ", stale.string());
      detail::remove_file_if_exists(stale);
    }
    detail::fsync_directory(root);
  } catch (const std::exception& e) {
    detail::log_warn("retention after saving ", committed_name, " failed (the checkpoint is committed): ", e.what());
  }
}

fs::path CheckpointIO::Impl::resolve(const fs::path& path) {
  return detail::agreed_from_rank0(comm, "load", [&] { return detail::resolve_load_path(root, path).string(); });
}

LoadResult CheckpointIO::load(const fs::path& path, const Snapshot& targets, const LoadOptions& options) {
  impl_->wait_for_background();
  detail::check_load_request(impl_->comm, "load", targets, options);
  return impl_->load_into_any_memory(impl_->resolve(path), targets, options);
}

LoadResult CheckpointIO::Impl::load_file(const fs::path& file, const Snapshot& targets, const LoadOptions& options,
                                         const Snapshot* device_targets) {
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  const auto start = std::chrono::steady_clock::now();
  const int rank = comm.rank();
  const std::string file_name = file.string();

  std::optional<detail::h5::ContainerReader> reader;
  detail::h5::ContainerIndex index;
  LoadResult result;
  result.path = file_name;
  std::vector<LocalTensor> local;
  run_agreed(comm, "load " + file_name, [&] {
    local = collect_local_tensors(targets, rank, "load:");
    reader.emplace(comm.get(), file_name);
    index = reader->read_index(kMaxIndexBytes);
    const std::string rs = reader->read_bytes(detail::h5::kRunningStateDataset, kMaxRunningStateBytes);
    if (rs.size() != index.running_state.bytes || detail::xxh3_64(rs.data(), rs.size()) != index.running_state.xxh3)
      throw IntegrityError(file_name + ": the running state does not match its checksum");
    result.running = detail::h5::decode_running_state(rs, file_name);
  });
  auto close_and_rethrow = [&](const Failure& f) {
    try {
      reader->close();
    } catch (...) {
    }
    reader.reset();
    detail::rethrow(f);
  };

  // Keys: what any rank asks for against what the file holds.
  std::map<std::pair<std::string, std::string>, const detail::h5::IndexTensor*> stored;
  for (const auto& t : index.tensors) stored[{t.group, t.name}] = &t;
  std::string my_keys;
  for (const auto& t : local) my_keys += std::string(kGroupNames[t.group]) + "/" + *t.name + '\n';
  std::set<std::pair<std::string, std::string>> requested;
  for (const auto& keys : comm.allgather_bytes(my_keys)) {
    std::size_t pos = 0;
    while (pos < keys.size()) {
      const auto end = keys.find('\n', pos);
      const std::string key = keys.substr(pos, end - pos);
      const auto slash = key.find('/');
      requested.insert({key.substr(0, slash), key.substr(slash + 1)});
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
  for (const auto& key : requested)
    if (!stored.count(key)) result.keys.missing.push_back({key.first, key.second});
  for (const auto& t : index.tensors)
    if (requested_groups.count(t.group) && !requested.count({t.group, t.name}))
      result.keys.unexpected.push_back({t.group, t.name});
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

  // Check every request against the file first, so that no rank reads or exchanges pieces
  // of a tensor that some rank cannot load.
  std::vector<detail::TensorDecl> requests;  // this rank's pieces of stored tensors
  std::vector<const LocalTensor*> request_tensor;
  std::optional<Failure> failure;
  try {
    for (const auto& t : local) {
      const std::string group = kGroupNames[t.group];
      auto it = stored.find({group, *t.name});
      if (it == stored.end()) continue;  // reported as missing
      const auto& st = *it->second;
      const std::string where =
          file_name + ": tensor " + qualified(group, *t.name) + " on rank " + std::to_string(rank);
      if (st.dtype != t.shard->dtype)
        throw MismatchError(where + ": requested as " + std::string(dtype_name(t.shard->dtype)) + " but stored as " +
                            std::string(dtype_name(st.dtype)));
      if (st.shape != t.shard->global_shape)
        throw MismatchError(where + ": requested with global shape " + detail::shape_to_string(t.shard->global_shape) +
                            " but stored with " + detail::shape_to_string(st.shape));
      detail::TensorDecl d{t.group, *t.name, st.dtype, st.shape, {}};
      for (const auto& seg : t.segments) d.segments.push_back(seg.block);
      requests.push_back(std::move(d));
      request_tensor.push_back(&t);
    }
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "load " + file_name)) close_and_rethrow(*f);

  // Read plan: a piece that several ranks ask for (a replicated tensor) is read from the file
  // once, by the asker with the fewest bytes to read so far, and sent to the others, so file
  // reads do not grow with the number of replicas.
  detail::WritePlan read_plan;
  run_agreed(comm, "load " + file_name, [&] {
    std::vector<std::vector<detail::TensorDecl>> all;
    for (const auto& bytes : comm.allgather_bytes(detail::encode_decls(requests)))
      all.push_back(detail::decode_decls(bytes));
    read_plan = detail::make_write_plan(all, detail::Coverage::Partial);
  });
  auto piece_memory = [&](int decl, int segment) {
    const LocalTensor& t = *request_tensor[decl];
    return static_cast<char*>(t.shard->data.writable()) +
           static_cast<std::size_t>(t.segments[segment].memory_offset) * dtype_size(t.shard->dtype);
  };

  try {
    detail::fault_point("load.read", rank);
    {
      // Small pieces are read together, a window of the file at a time.
      std::vector<std::string> groups(std::begin(kGroupNames), std::end(kGroupNames));
      std::vector<detail::h5::ContainerReader::BlockRequest> mine;
      for (const auto& t : read_plan.tensors)
        for (const auto& p : t.pieces)
          if (p.writer == rank) mine.push_back({&groups[t.group], &t.name, t.dtype, &t.shape, &p.block});
      reader->plan_reads(mine);
    }
    for (const auto& t : read_plan.tensors)
      for (const auto& p : t.pieces) {
        if (p.writer != rank) continue;
        char* out = piece_memory(p.writer_decl, p.writer_segment);
        if (options.verify)
          detail::read_block_verified(*reader, file_name, *stored.at({kGroupNames[t.group], t.name}), index.chunk_bytes,
                                      p.block, out);
        else
          reader->read_block(kGroupNames[t.group], t.name, t.dtype, t.shape, p.block, out);
      }
    // Per-rank blobs: restored per rank when the world size matches, else all handed back.
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
      result.rank_blob = read_blob(rank);
    } else {
      for (int r = 0; r < index.world_size; ++r) result.saved_rank_blobs.push_back(read_blob(r));
    }
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "load " + file_name)) close_and_rethrow(*f);
  run_agreed(comm, "load: close " + file_name, [&] { reader->close(); });
  result.bytes_read = read_plan.bytes_per_rank[rank];
  reader.reset();

  // Replicated pieces between device shards go from device to device over NCCL, after the
  // readers' copies reached their devices; the others over MPI in host memory first.
  std::vector<int> request_devices;
  std::vector<const TensorShard*> device_shards;
  for (const LocalTensor* t : request_tensor) {
    const TensorShard* d = device_targets ? device_targets->group(kGroupNames[t->group])->find(*t->name) : nullptr;
    device_shards.push_back(d);
    request_devices.push_back(d ? d->device : kHostMemory);
  }
  const detail::DevicePieces on_devices = detail::plan_device_replicas(comm, nccl, read_plan, request_devices);
  result.bytes_received = send_replicas(comm, read_plan, on_devices, piece_memory);
  if (detail::cuda::device_supported()) {  // the same on every rank
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

  const double seconds = comm.allreduce_max(seconds_since(start));
  const auto read_total = static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_read)));
  const auto received_total = static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_received)));
  const auto nccl_total =
      detail::cuda::nccl_supported()
          ? static_cast<double>(comm.allreduce_sum(static_cast<std::int64_t>(result.bytes_received_nccl)))
          : 0.0;
  detail::log_info("loaded ", file_name, " (global_step ", result.running.global_step, ", saved by ", index.world_size,
                   " ranks, loaded by ", comm.size(), ") in ", fixed(seconds, 3), " s; read ", human_bytes(read_total),
                   " from the file, ", human_bytes(received_total), " of replicas from other ranks",
                   nccl_total > 0 ? " (" + human_bytes(nccl_total) + " of them over NCCL)" : std::string());
  return result;
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

std::optional<LoadResult> CheckpointIO::load_latest(const Snapshot& targets, const LoadOptions& options) {
  impl_->wait_for_background();
  detail::check_load_request(impl_->comm, "load_latest", targets, options);
  const auto candidates = impl_->load_candidates();
  if (candidates.empty()) {
    detail::log_info("no checkpoint in ", impl_->root.string(), ": starting fresh");
    return std::nullopt;
  }
  std::string errors;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    try {
      return impl_->load_into_any_memory(impl_->root / candidates[i], targets, options);
    } catch (const Error& e) {
      // Damaged or unreadable checkpoints are skipped; a state dict that does not fit the
      // checkpoint is the caller's problem and is not hidden by falling back.
      if (!detail::falls_back_on(e.kind())) throw;
      errors += std::string(errors.empty() ? "" : "; ") + e.what();
      if (i + 1 < candidates.size())
        detail::log_warn("cannot load ", candidates[i], " (", e.what(), "); falling back to ", candidates[i + 1]);
    }
  }
  throw FormatError("no checkpoint in " + impl_->root.string() + " could be loaded: " + errors);
}

std::optional<fs::path> CheckpointIO::latest() {
  impl_->wait_for_background();
  const std::string name = detail::agreed_from_rank0(impl_->comm, "latest", [&] {
    const auto p = read_latest(impl_->root);
    return p ? p->string() : std::string();
  });
  if (name.empty()) return std::nullopt;
  return fs::path(name);
}

}  // namespace ckptio
