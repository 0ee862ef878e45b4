#include <chrono>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "h5/library_lock.hpp"
#include "io/checkpoint_io_impl.hpp"
#include "io/local_tensors.hpp"
#include "io/log_format.hpp"
#include "mpi/agree.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::agree_failure;
using detail::byte_pointer;
using detail::collect_local_tensors;
using detail::Comm;
using detail::Failure;
using detail::fixed;
using detail::human_bytes;
using detail::LocalTensor;
using detail::qualified;
using detail::run_agreed;
using detail::seconds_since;

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

}  // namespace ckptio
