// ckptio: collective checkpoint save and load into one parallel HDF5 container.
#pragma once

#include <mpi.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ckptio/dtype.hpp"
#include "ckptio/load_options.hpp"
#include "ckptio/snapshot.hpp"

namespace ckptio {

struct CheckpointOptions {
  // Number of committed checkpoints to keep in the root; 0 keeps all. The checkpoint that
  // `latest` names is never pruned.
  int keep_last = 0;
  // Take the root's lock file so that a second job writing into the same root is refused.
  bool lock_root = true;
  // Most bytes of host memory save_async may use to stage a copy of the shards (0: no
  // limit). A save_async that would need more writes synchronously instead, with a warning.
  std::uint64_t max_staging_bytes = 0;
  // Ask the kernel for transparent huge pages (madvise MADV_HUGEPAGE) for save_async's
  // staging buffer when it is ordinary (not page-locked) memory: fewer page faults and TLB
  // misses, but each first touch zeroes 2 MiB, so the first save_async may get slower.
  // Off by default; docs/PERFORMANCE.md says how to measure both on your machine.
  bool staging_huge_pages = false;
  // MPI-IO hints (MPI_Info keys and values) for the container file, e.g. {"striping_factor",
  // "16"} and {"striping_unit", "16777216"} on Lustre, {"cb_nodes", "8"}. The environment
  // variable CKPTIO_MPIIO_HINTS ("key=value,key=value") adds the keys not set here (a key
  // set here wins).
  std::map<std::string, std::string> mpi_io_hints;
  // Datasets of at least `alignment` bytes start at a multiple of it (the stripe or block
  // size of a parallel file system). 0: with direct_io, datasets of at least 1 MiB start at
  // a multiple of 4 KiB (so that page-aligned memory is written without a copy), the
  // others are packed; without direct_io all are packed (HDF5's default).
  std::uint64_t alignment = 0;
  // Write the large pieces of tensor data with O_DIRECT (their page-aligned middle; the
  // ends, small tensors and metadata stay buffered), so that they go from the shards to the
  // device without a copy into the page cache (that copy, serialised on one shared file,
  // limits buffered saves; docs/PERFORMANCE.md has figures). A file system that refuses
  // O_DIRECT (tmpfs) is written buffered. The data
  // are durable at the commit either way (the file is fsynced). Loads (load, load_latest)
  // read with O_DIRECT too: contiguous reads of 64 KiB or more go into the shard's memory
  // where it is page-aligned, else through a small aligned buffer, and leave nothing in
  // the page cache; where refused, buffered. Unset: the environment
  // variable CKPTIO_DIRECT_IO (1 or 0) decides, else on. A value set here wins over it.
  std::optional<bool> direct_io;
  // Tensors of at most this many bytes share one packed byte dataset per group instead of a
  // dataset each (container format version 2, docs/FORMAT.md: far less metadata per tensor
  // for models with many small tensors). 0: no packing, the file is format version 1, which
  // older ckptio releases read. Unset: the environment variable CKPTIO_PACK_MAX_BYTES
  // decides, else 1 MiB. A value set here wins over it.
  std::optional<std::uint64_t> pack_max_bytes;
  // Also export this group ("model", "optimizer" or "ema"; empty: none) at every save, as
  // <root>/epoch{E}-global_step{G}.<group>.safetensors beside the container. It is written
  // and renamed into place before the container is committed (a failed export fails the
  // save) and pruned together with its container.
  std::string export_safetensors;
  // dtype of the floating-point tensors of that export (F64, F32, F16, BF16); unset: as saved.
  std::optional<DType> export_dtype;

  // The node-local level (docs/MULTILEVEL.md). Empty: none, every save goes to the root.
  // Otherwise a folder on node-local storage (tmpfs, NVMe), the same path on every node;
  // "%j" in it becomes the Slurm job ID (SLURM_JOB_ID, "nojob" outside Slurm). Every save
  // writes each node's pieces there as a container, copies it to `partner_copies` other
  // nodes over MPI, and counts once every node and every copy succeeded; every
  // `flush_every`-th save (and the save after a preemption stop) also goes to the root.
  std::filesystem::path local_dir;
  // Every k-th save also writes the shared root (1: every save, as without local_dir).
  int flush_every = 1;
  // Copies of each node's local container on the next nodes of a ring (0: none).
  int partner_copies = 1;
  // Committed local checkpoints kept on each node (own and partner copies); at least 1. Local
  // checkpoints older than the newest flush to the root are pruned too (restart would not
  // choose them).
  int local_keep_last = 2;
};

// Saves and loads checkpoints under one root folder:
//   <root>/epoch{E}-global_step{G}.h5   one container per checkpoint
//   <root>/latest                       the newest committed container's file name
//   <root>/.ckptio.lock                 held while a CheckpointIO is alive
// Every member function except root(), rank(), world_size() and recent_save_seconds() is collective over the
// communicator given to the constructor: every rank calls it, in the same order. A failure on any rank raises the same
// ckptio::Error on every rank.
class CheckpointIO {
 public:
  // Collective over comm. Creates the root if needed and takes its lock (LockedError when
  // another live process holds it). The communicator is duplicated; comm may be freed after.
  // Reads CKPTIO_DIRECT_IO and CKPTIO_MPIIO_HINTS here, once, on rank 0 (every rank uses
  // rank 0's values); they fill only the options left at their defaults (UsageError on
  // every rank when malformed).
  CheckpointIO(MPI_Comm comm, std::filesystem::path root, CheckpointOptions options = {});
  ~CheckpointIO();
  // Neither copyable nor movable: a PreemptionGuard and a save in flight refer to it by
  // address. To hand one around, hold it by pointer (std::unique_ptr, std::optional::emplace).
  CheckpointIO(const CheckpointIO&) = delete;
  CheckpointIO& operator=(const CheckpointIO&) = delete;
  CheckpointIO(CheckpointIO&&) = delete;
  CheckpointIO& operator=(CheckpointIO&&) = delete;

  // Collective. Writes <root>/epoch{E}-global_step{G}.h5 atomically and makes it `latest`;
  // returns its path. An existing checkpoint of the same name is replaced.
  std::filesystem::path save(const Snapshot& snapshot);

  // Collective. Like save(), but returns as soon as the save is planned (an error in the plan,
  // such as shards that disagree across ranks, is thrown here) and the shards this rank writes
  // are copied into a reusable staging buffer, checksummed in the same pass: a background thread
  // ("ckptio-io"), on its own duplicate of the communicator, writes and commits the checkpoint
  // while training goes on, so the snapshot's tensors may change as soon as this returns.
  // Waits for the previous save first. Needs MPI initialised with MPI_THREAD_MULTIPLE
  // (UsageError otherwise). While a save is in flight, the program
  // must not call HDF5 itself (ckptio's own calls wait for it). Returns the path the
  // checkpoint will have once committed; its outcome is reported by the next wait(), save(),
  // save_async(), load(), load_latest() or latest() on this object, which rethrow its error.
  // Pending saves are finished inside MPI_Finalize, before HDF5 shuts down. With local_dir, a
  // save that goes to the local level only is staged (all of this rank's shards) and written,
  // copied to the partners and committed in the background; a flush save writes its local
  // level synchronously, then the root in the background (docs/MULTILEVEL.md).
  std::filesystem::path save_async(const Snapshot& snapshot);

  // Waits for the save in flight, if any, and rethrows its error. Not collective, but the
  // background save is: every rank gets the same outcome.
  void wait();
  // True from save_async until the wait that collects its outcome.
  bool save_in_flight() const;
  // Seconds since the save in flight started (0 when none).
  double in_flight_seconds() const;
  // Wall-clock seconds of the most recent completed save, from the call to the commit (for
  // save_async including the background part); 0 before the first.
  double last_save_seconds() const;
  // Bytes of host memory the staging buffer holds (it grows to the largest snapshot staged,
  // or reserved, and never shrinks).
  std::uint64_t staging_bytes() const;
  // Collective (waits for a save in flight first). Grows this rank's staging buffer to at
  // least `bytes` (per rank; ranks may differ) and faults its pages in now, so that the
  // first save_async of a snapshot that fits does not pay for allocating and touching fresh
  // memory inside the training loop; later save_asyncs reuse the buffer either way. The
  // Snapshot overload reserves room for all of this rank's shards, at least what
  // save_async(snapshot) needs (it stages only the shards this rank writes). Ignores
  // max_staging_bytes (which only decides whether save_async stages at all).
  void reserve_staging(std::uint64_t bytes);
  void reserve_staging(const Snapshot& snapshot);

  // Collective (waits for a save in flight first, as do load_latest and latest). Loads `path` into the shards of
  // `targets` (any world size, any split) and returns the running state. `path` is a container file, a checkpoint file
  // name inside the root, or a folder (resolved through its `latest`). Never falls back to another checkpoint.
  // Uses LoadOptions::strict and verify; the fields for load_checkpoint only (group, revision, convert_dtype) must
  // keep their defaults, and every target shard must be writable (UsageError otherwise).
  LoadResult load(const std::filesystem::path& path, const Snapshot& targets, const LoadOptions& options = {});

  // Collective. Loads the root's `latest`; when it cannot be opened or fails verification,
  // falls back to the next older committed checkpoint, with a warning. nullopt when the root has no checkpoint.
  std::optional<LoadResult> load_latest(const Snapshot& targets, const LoadOptions& options = {});

  // Not collective. Makes the next save also write the shared root, whatever flush_every
  // says (PreemptionGuard asks this when it agrees to stop: a requeued job may land on
  // other nodes, whose local storage does not hold this job's checkpoints).
  void flush_next_save() const noexcept;

  // Collective. Path of the checkpoint `latest` names, nullopt when there is none.
  std::optional<std::filesystem::path> latest();

  // Not collective. The longest duration in seconds of the last three saves of this
  // CheckpointIO (from the call to the commit, an asynchronous save's background part
  // included) and of the save in flight so far; 0 before the first. What PreemptionGuard
  // budgets for a save.
  double recent_save_seconds() const noexcept;

  const std::filesystem::path& root() const;
  int rank() const;
  int world_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// File name of the checkpoint for (epoch, global_step): "epoch{E}-global_step{G}.h5".
std::string checkpoint_file_name(std::int64_t epoch, std::int64_t global_step);

}  // namespace ckptio
