#include "ckptio/checkpoint_io.hpp"

#include <chrono>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "core/log.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "h5/library_lock.hpp"
#include "io/checkpoint_io_impl.hpp"
#include "io/fs_util.hpp"
#include "io/load_checks.hpp"
#include "io/local_tensors.hpp"
#include "io/log_format.hpp"
#include "io/options_env.hpp"
#include "io/retention.hpp"
#include "io/save_transaction.hpp"
#include "mpi/agree.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::collect_local_tensors;
using detail::Comm;
using detail::run_agreed;
using detail::seconds_since;

CheckpointIO::CheckpointIO(MPI_Comm comm, fs::path root, CheckpointOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->comm = Comm(comm);
  // Where ranks outnumber the cores, a rank that waits in one of ckptio's collectives sleeps
  // between polls instead of spinning, leaving the core to the ranks that still work.
  if (detail::node_oversubscribed(impl_->comm)) {
    impl_->comm.sleep_while_waiting();
    detail::log_debug("more ranks than cores on this node: waits in collectives sleep between polls");
  }
  impl_->options = detail::with_environment(impl_->comm, options);
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
  if (!options.local_dir.empty()) impl_->local = std::make_unique<detail::LocalLevel>(impl_->comm, options);
}

CheckpointIO::Impl::~Impl() {
  // The thread uses background_comm and staging: it must end before they are destroyed.
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

bool CheckpointIO::Impl::next_save_flushes() {
  ++saves;
  return saves % options.flush_every == 0 || flush_requested.exchange(false);
}

bool CheckpointIO::Impl::save_local_level(const Snapshot& snapshot) {
  if (!local) return true;
  const bool flush = next_save_flushes();
  local->save(snapshot, options);
  return flush;
}

void CheckpointIO::flush_next_save() const noexcept { impl_->flush_requested = true; }

fs::path CheckpointIO::save(const Snapshot& snapshot) {
  impl_->wait_for_background();
  const auto start = std::chrono::steady_clock::now();
  if (!impl_->save_local_level(snapshot))
    return impl_->local->folder() / ("node" + std::to_string(impl_->local->node())) /
           checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
  fs::path path = impl_->save_from_any_memory(snapshot);
  impl_->record_save_seconds(seconds_since(start));
  if (impl_->local) impl_->local->flushed(snapshot.running.global_step, /*prune_now=*/true);
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
    collect_local_tensors(snapshot, comm.rank(), true);  // validate before copying
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
    collect_local_tensors(targets, comm.rank(), true);
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

fs::path CheckpointIO::Impl::save(const Snapshot& snapshot) {
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  detail::SaveTransaction transaction(comm, root, options, snapshot);
  return transaction.run();
}

fs::path CheckpointIO::Impl::resolve(const fs::path& path) {
  return detail::agreed_from_rank0(comm, "load", [&] { return detail::resolve_load_path(root, path).string(); });
}

LoadResult CheckpointIO::load(const fs::path& path, const Snapshot& targets, const LoadOptions& options) {
  impl_->wait_for_background();
  detail::check_load_request(impl_->comm, "load", targets, options);
  return impl_->load_into_any_memory(impl_->resolve(path), targets, options);
}

std::optional<LoadResult> CheckpointIO::load_latest(const Snapshot& targets, const LoadOptions& options) {
  impl_->wait_for_background();
  detail::check_load_request(impl_->comm, "load_latest", targets, options);
  const auto candidates = impl_->load_candidates();
  if (impl_->local) {
    const std::int64_t shared_step = candidates.empty() ? -1 : detail::global_step_of(candidates.front());
    if (auto result = impl_->local->load_latest(targets, options, shared_step)) return result;
  }
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
