// save_async: the plan and the staging copy on the caller's thread; the other phases of the
// same SaveTransaction on the background engine's thread, over its own duplicate of the
// communicator (so that its collectives never mix with the caller's).
#include <chrono>
#include <memory>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "h5/library_lock.hpp"
#include "io/checkpoint_io_impl.hpp"
#include "io/local_tensors.hpp"
#include "io/log_format.hpp"
#include "io/save_transaction.hpp"
#include "mpi/agree.hpp"

namespace ckptio {

namespace {

// What the I/O thread owns while a save is in flight. The transaction reads the staged
// snapshot, so it is declared after it (destroyed first).
struct AsyncJob {
  Snapshot staged;
  std::unique_ptr<detail::SaveTransaction> transaction;
};

void check_async_request(const detail::Comm& comm, const Snapshot& snapshot) {
  detail::run_agreed(comm, "save_async", [&] {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_MULTIPLE)
      throw UsageError(
          "save_async needs MPI_THREAD_MULTIPLE: initialise MPI with MPI_Init_thread(&argc, &argv, "
          "MPI_THREAD_MULTIPLE, &provided) and check `provided`");
    detail::collect_local_tensors(snapshot, comm.rank(), true);  // refuses bad pieces
  });
}

}  // namespace

void CheckpointIO::Impl::start_background_engine() {
  if (background) return;
  // HDF5 registers its MPI_Finalize hook at initialisation: initialise it before
  // registering ours, so that ours runs first and joins the thread while HDF5 still works.
  detail::h5::initialise_library();
  detail::BackgroundSave::register_finalize_hook();
  background_comm = detail::Comm(comm.get());
  // The I/O thread shares the cores with training: it sleeps while it waits for the other
  // ranks (a blocking collective would spin for as long as the slowest rank writes).
  background_comm.sleep_while_waiting();
  background = std::make_unique<detail::BackgroundSave>();
}

std::filesystem::path CheckpointIO::Impl::save_async(const Snapshot& snapshot) {
  using detail::fixed;
  using detail::human_bytes;
  using detail::seconds_since;
  wait_for_background();
  if (local) {
    // A save to the local level only: staged here, written in the background. A flush save
    // writes its local level first, synchronously, then the root in the background (the
    // flush is the slow part; both in one background job would need a second staging copy).
    if (!next_save_flushes()) return save_local_async(snapshot);
    local->save(snapshot, options);
  }
  const auto start = std::chrono::steady_clock::now();
  check_async_request(comm, snapshot);
  auto job = std::make_shared<AsyncJob>();
  job->transaction = std::make_unique<detail::SaveTransaction>(comm, root, options, snapshot);
  job->transaction->plan(/*allow_device=*/true);
  // Only what this rank writes is staged: replicas written by another rank are not read.
  const auto written = job->transaction->written_tensors();
  const std::uint64_t needed = detail::StagingPool::bytes_needed(snapshot, written);
  const auto most_needed = static_cast<std::uint64_t>(comm.allreduce_max(static_cast<std::int64_t>(needed)));
  if (options.max_staging_bytes > 0 && most_needed > options.max_staging_bytes) {
    detail::log_warn("save_async: staging would take ", human_bytes(static_cast<double>(most_needed)),
                     " on some rank, over max_staging_bytes (",
                     human_bytes(static_cast<double>(options.max_staging_bytes)), "); saving synchronously instead");
    job.reset();
    std::filesystem::path path = save_from_any_memory(snapshot);
    record_save_seconds(seconds_since(start));
    if (local) local->flushed(snapshot.running.global_step, /*prune_now=*/true);
    return path;
  }
  start_background_engine();
  const double check_seconds = seconds_since(start);
  double reserve_seconds = 0;
  detail::run_agreed(comm, "save_async: stage", [&] {
    const auto reserve_start = std::chrono::steady_clock::now();
    staging.reserve(needed);  // allocates and faults in only when the pool grows
    reserve_seconds = seconds_since(reserve_start);
    // The host pieces are copied and checksummed in one pass, here, so that the I/O
    // thread only writes (docs/PERFORMANCE.md, "Background saves").
    job->staged = staging.stage_device_shards(snapshot, written);
    job->transaction->stage_written_pieces(job->staged);
  });
  job->transaction->continue_on(background_comm, job->staged);
  const double staging_seconds = seconds_since(start);
  std::filesystem::path path = job->transaction->final_path();
  in_flight_since_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
  const std::int64_t global_step = snapshot.running.global_step;
  background->start([this, job, start, global_step] {
    try {
      const std::lock_guard hdf5_lock(detail::h5::library_mutex());
      auto& tx = *job->transaction;
      // Where the I/O thread's time and CPU go (the debug log; docs/PERFORMANCE.md).
      detail::PhaseTimes phases;
      auto timed = [&](const char* name, auto&& phase) {
        phase();
        phases.done(name);
      };
      timed("create", [&] { tx.create(); });
      timed("write", [&] { tx.write(); });
      timed("metadata", [&] { tx.metadata(); });
      timed("durable", [&] { tx.durable(); });
      timed("export", [&] { tx.export_group(); });
      timed("commit", [&] { tx.commit(); });
      // The local level's pruning runs on this communicator's thread, at the next save.
      if (local) local->flushed(global_step, /*prune_now=*/false);
      timed("retain", [&] { tx.retain(); });
      const auto path = tx.finish();
      detail::log_debug("save_async: ", path.filename().string(),
                        " on the I/O thread, seconds per phase: ", phases.text());
    } catch (...) {
      in_flight_since_ns = 0;
      throw;
    }
    record_save_seconds(seconds_since(start));
    in_flight_since_ns = 0;
  });
  detail::log_debug("save_async: staged ", human_bytes(static_cast<double>(needed)), " in ", fixed(staging_seconds, 3),
                    " s (checks, plan and agreement ", fixed(check_seconds, 3), " s, growing the pool ",
                    fixed(reserve_seconds, 3), " s, copy and agreement ",
                    fixed(staging_seconds - check_seconds - reserve_seconds, 3), " s); writing in the background");
  return path;
}

std::filesystem::path CheckpointIO::Impl::save_local_async(const Snapshot& snapshot) {
  using detail::fixed;
  using detail::human_bytes;
  using detail::seconds_since;
  const auto start = std::chrono::steady_clock::now();
  std::filesystem::path path = local->folder() / ("node" + std::to_string(local->node())) /
                               checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
  check_async_request(comm, snapshot);
  // Every shard of this rank is staged: the node's container holds the node's pieces, and
  // which rank of the node writes a replicated one is decided on the background thread.
  const std::uint64_t needed = detail::StagingPool::bytes_needed(snapshot, detail::StagingPool::Shards::All);
  const auto most_needed = static_cast<std::uint64_t>(comm.allreduce_max(static_cast<std::int64_t>(needed)));
  if (options.max_staging_bytes > 0 && most_needed > options.max_staging_bytes) {
    detail::log_warn("save_async: staging would take ", human_bytes(static_cast<double>(most_needed)),
                     " on some rank, over max_staging_bytes (",
                     human_bytes(static_cast<double>(options.max_staging_bytes)),
                     "); saving the local level synchronously instead");
    local->save(snapshot, options);
    return path;
  }
  start_background_engine();
  auto staged = std::make_shared<Snapshot>();
  detail::run_agreed(comm, "save_async: stage", [&] {
    staging.reserve(needed);  // allocates and faults in only when the pool grows
    *staged = staging.stage(snapshot, detail::StagingPool::Shards::All);
  });
  const double staging_seconds = seconds_since(start);
  // The local level's collectives run on the engine's communicator; its node and partner
  // communicators are used by nobody else until the next save, wait or load waits for this.
  background->start([this, staged] { local->save(*staged, options, background_comm); });
  detail::log_debug("save_async: staged ", human_bytes(static_cast<double>(needed)), " for the local level in ",
                    fixed(staging_seconds, 3), " s; writing it and its partner copies in the background");
  return path;
}

}  // namespace ckptio
