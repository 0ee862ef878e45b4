// CheckpointIO's state, shared by the files that implement it: checkpoint_io.cpp (the public
// calls and save, whose phases are in save_transaction.hpp), save_async.cpp (the background
// engine), load_path.cpp (load).
#pragma once

#include <atomic>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckptio/checkpoint_io.hpp"
#include "core/write_plan.hpp"
#include "io/background_save.hpp"
#include "io/device_replicas.hpp"
#include "io/local_tensors.hpp"
#include "io/multilevel.hpp"
#include "io/root_lock.hpp"
#include "io/staging_pool.hpp"
#include "mpi/comm.hpp"

namespace ckptio {

struct CheckpointIO::Impl {
  detail::Comm comm;
  // Declared after comm, so destroyed before it.
  detail::NcclState nccl;
  std::filesystem::path root;
  CheckpointOptions options;
  detail::RootLock lock;  // held by rank 0
  // Durations of the last saves, newest last, from the call to the commit (an asynchronous
  // save's background part included); written by the I/O thread too.
  mutable std::mutex save_seconds_mutex;
  std::deque<double> save_seconds;
  void record_save_seconds(double seconds);

  // The background engine of save_async (save_async.cpp): its own duplicate of the
  // communicator (so that its collectives never mix with this thread's), the staging copy
  // of the pieces this rank writes, and the I/O thread; started by the first save_async.
  detail::Comm background_comm;
  detail::StagingPool staging;
  // Host copies of shards in device memory, for synchronous saves and loads.
  detail::StagingPool device_staging;
  std::unique_ptr<detail::BackgroundSave> background;
  std::atomic<double> last_save_seconds{0.0};
  std::atomic<std::int64_t> in_flight_since_ns{0};  // steady_clock; 0 when none

  // The node-local level (options.local_dir set); saves counts the saves, for flush_every.
  std::unique_ptr<detail::LocalLevel> local;
  std::int64_t saves = 0;
  std::atomic<bool> flush_requested{false};
  // Counts a save of a multi-level CheckpointIO; whether it also goes to the root.
  bool next_save_flushes();
  // Saves to the local level when there is one; returns whether this save also goes to the root.
  bool save_local_level(const Snapshot& snapshot);
  // save_async of a save that goes to the local level only (save_async.cpp): staged on this
  // thread, written and copied to the partners on the background engine's.
  std::filesystem::path save_local_async(const Snapshot& snapshot);

  ~Impl();
  void wait_for_background();
  std::filesystem::path save_async(const Snapshot& snapshot);
  std::filesystem::path save_from_any_memory(const Snapshot& snapshot);
  LoadResult load_into_any_memory(const std::filesystem::path& file, const Snapshot& targets,
                                  const LoadOptions& options);
  std::filesystem::path save(const Snapshot& snapshot);
  // `device_targets`: for a load into device memory, the caller's targets, of which `targets`
  // holds host copies (StagingPool::host_targets); copied to the devices at the end.
  LoadResult load_file(const std::filesystem::path& file, const Snapshot& targets, const LoadOptions& options,
                       const Snapshot* device_targets = nullptr);
  // Parts of load_file (load_path.cpp).
  void exchange_replicas(const detail::WritePlan& read_plan,
                         const std::vector<const detail::LocalTensor*>& request_tensor, const Snapshot& targets,
                         const Snapshot* device_targets, LoadResult& result);
  void log_load(const std::string& file_name, int saved_world_size, double local_seconds, const LoadResult& result);
  std::filesystem::path resolve(const std::filesystem::path& path);
  std::vector<std::string> load_candidates();
  void start_background_engine();
};

}  // namespace ckptio
