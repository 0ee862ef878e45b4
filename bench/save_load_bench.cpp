// Save/load throughput of ckptio on a synthetic training state.
//
// All ranks build S bytes of F32 tensors (row blocks of T tensors), save them collectively
// with CheckpointIO::save and load them back, in the same layout and optionally in the row
// decomposition of another rank count (resharding). Every measurement is printed as one
// JSON line on standard output; every load is checked against the pattern (outside the
// timed region) and a wrong byte aborts the job.
//
//   mpiexec -n 4 ckptio_bench_save_load --dir DIR --bytes 2GiB --repeats 3 --reshard-ranks 3

#include <mpi.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "ckptio/safetensors.hpp"
#include "mpi_main.hpp"
#include "page_cache.hpp"
#include "pattern.hpp"
#include "synthetic_state.hpp"

namespace fs = std::filesystem;
using namespace ckptio_bench;

namespace {

struct BenchOptions {
  std::uint64_t bytes = std::uint64_t{2} << 30;
  int tensors = 20;
  std::int64_t columns = 1024;
  fs::path dir;
  int repeats = 1;
  int reshard_ranks = 0;
  bool keep_cache = false;
  bool compare_verify = false;
  double settle_seconds = 0;
  bool async = false;
  int async_saves = 3;
  bool reserve_staging = false;
  std::string workload = "blocks";
  bool posix_baseline = false;
  bool export_safetensors = false;
  bool print_workload_bytes = false;
  bool baselines_first = false;
  std::uint64_t alignment = 0;
};

// Rank and size of the job, and where the JSON lines go.
struct Job {
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0;
  int size = 1;
  bool is_root() const { return rank == 0; }
};

// CPU seconds (user and system) this process and its waited-for children have used so far.
double cpu_seconds_used() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    ::getrusage(who, &usage);
    total += static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
             static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  return total;
}

// Collective. The longest time any rank spent in `operation`, which starts on all ranks
// together (barrier): the time the whole job waited for it. With `cpu_seconds`, also the CPU
// time all ranks used in it together (the kernel's writeback threads not included): on a
// busy machine a steadier measure of the work than the elapsed time.
template <typename Operation>
double time_collective(const Job& job, Operation&& operation, double* cpu_seconds = nullptr) {
  MPI_Barrier(job.comm);
  const double start = MPI_Wtime();
  const double cpu_start = cpu_seconds_used();
  operation();
  double elapsed = MPI_Wtime() - start;
  double cpu = cpu_seconds_used() - cpu_start;
  MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, job.comm);
  MPI_Allreduce(MPI_IN_PLACE, &cpu, 1, MPI_DOUBLE, MPI_SUM, job.comm);
  if (cpu_seconds) *cpu_seconds = cpu;
  return elapsed;
}

// CPU seconds (user and system) of this process's threads, and of the calling thread alone.
double rusage_seconds(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}
double process_cpu_seconds() { return rusage_seconds(RUSAGE_SELF); }
double thread_cpu_seconds() { return rusage_seconds(RUSAGE_THREAD); }

// Collective. The reference for save_async's blocked time: the longest time any rank takes
// to memcpy the bytes of its shards into memory it has already touched (median of 3).
double memcpy_reference_seconds(const Job& job, const ckptio::Snapshot& snapshot) {
  std::vector<const ckptio::TensorShard*> shards;
  std::uint64_t bytes = 0;
  for (const char* group : ckptio::kGroupNames) {
    if (!snapshot.group(group)) continue;
    for (const auto& [name, shard] : *snapshot.group(group)) {
      shards.push_back(&shard);
      bytes += shard.local_bytes();
    }
  }
  std::vector<char> target(bytes, 1);  // touched: every page resident before the copy
  std::vector<double> samples;
  for (int i = 0; i < 3; ++i) {
    samples.push_back(time_collective(job, [&] {
      char* out = target.data();
      for (const ckptio::TensorShard* shard : shards) {
        std::memcpy(out, shard->data.get(), shard->local_bytes());
        out += shard->local_bytes();
      }
    }));
  }
  std::sort(samples.begin(), samples.end());
  return samples[1];
}

nlohmann::ordered_json measurement(const char* op, int repeat, const Job& job, int layout_ranks,
                                   const Workload& workload, double seconds, double cpu_seconds = -1) {
  nlohmann::ordered_json record;
  record["bench"] = "save_load";
  record["op"] = op;
  record["repeat"] = repeat;
  record["ranks"] = job.size;
  record["layout_ranks"] = layout_ranks;
  record["tensors"] = workload.tensor_count();
  record["bytes"] = workload.total_bytes();
  record["seconds"] = seconds;
  record["gbps"] = static_cast<double>(workload.total_bytes()) / seconds / 1e9;
  if (cpu_seconds >= 0) record["cpu_seconds"] = cpu_seconds;
  return record;
}

// Collective. Removes PATH (file or folder) on rank 0 once every rank is done with it, and
// returns when it is gone.
void remove_when_all_done(const Job& job, const fs::path& path) {
  MPI_Barrier(job.comm);
  if (job.is_root()) fs::remove_all(path);
  MPI_Barrier(job.comm);
}

// Row blocks per tensor in the saved layout: the workload's, else one per rank.
int saved_parts(const Job& job, const Workload& workload) { return workload.parts ? workload.parts : job.size; }

void print(const Job& job, const nlohmann::ordered_json& record) {
  if (job.is_root()) std::cout << record.dump() << std::endl;
}

// Collective. Throws on every rank when any rank's blocks differ from the pattern, after
// every rank with a wrong block has said where.
void verify_loaded(const Job& job, const Workload& workload, const std::vector<LocalBlock>& blocks, const char* op) {
  PatternCheck rank_check;
  for (const LocalBlock& block : blocks) {
    PatternCheck check = check_pattern(workload, block);
    if (check.mismatches > 0 && rank_check.mismatches == 0) rank_check.first_mismatch = check.first_mismatch;
    rank_check.mismatches += check.mismatches;
  }
  if (rank_check.mismatches > 0) {
    std::cerr << "[save_load_bench] [rank " << job.rank << "] " << op << ": " << rank_check.mismatches
              << " wrong elements; first: " << rank_check.first_mismatch << std::endl;
  }
  std::uint64_t total = rank_check.mismatches;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_UINT64_T, MPI_SUM, job.comm);
  if (total > 0) {
    throw std::runtime_error(std::string(op) + " restored " + std::to_string(total) +
                             " elements wrongly (see the per-rank messages above)");
  }
}

// Collective. Drops the page cache unless told not to; says once when it could not.
bool prepare_cold_read(const Job& job, const BenchOptions& options) {
  if (options.keep_cache) return false;
  const CacheDrop drop = drop_page_cache(job.comm);
  static bool warned = false;
  if (!drop.dropped && job.is_root() && !warned) {
    std::cerr << "[save_load_bench] warning: could not drop the page cache (" << drop.why_not
              << "); load figures may measure memory copies, not storage" << std::endl;
    warned = true;
  }
  return drop.dropped;
}

// Collective. Loads `path` into blocks laid out as `layout_ranks` row blocks per tensor,
// prints the measurement and checks the data.
void measure_load(const Job& job, const BenchOptions& options, const Workload& workload, ckptio::CheckpointIO& io,
                  const fs::path& path, const char* op, int layout_ranks, int repeat, std::int64_t global_step,
                  bool verify = true) {
  std::vector<LocalBlock> blocks = take_blocks(workload, layout_ranks, job.rank, job.size);
  // Also faults the pages in, so that the timed load does not pay for page faults.
  for (LocalBlock& block : blocks) poison(block);
  const ckptio::Snapshot targets = make_snapshot(workload, blocks, 0);
  const bool cache_dropped = prepare_cold_read(job, options);

  ckptio::LoadResult result;
  ckptio::LoadOptions load_options;
  load_options.verify = verify;
  double cpu = 0;
  const double seconds = time_collective(
      job, [&] { result = io.load(path, targets, load_options); }, &cpu);

  nlohmann::ordered_json record = measurement(op, repeat, job, layout_ranks, workload, seconds, cpu);
  record["cache_dropped"] = cache_dropped;
  print(job, record);
  verify_loaded(job, workload, blocks, op);
  if (result.running.global_step != global_step) {
    throw std::runtime_error(std::string(op) + " returned global_step " + std::to_string(result.running.global_step) +
                             ", saved " + std::to_string(global_step));
  }
}

// A stand-in for training steps: `chunks` rounds of arithmetic over a buffer that fits in
// cache, so that it measures the CPU time left to training, not memory bandwidth. Returns a
// value so that the compiler cannot drop the work. Never inlined: the loop timed alone and
// the loop timed during a background save must be the same machine code. Inlined, each call
// site got its own copy of the loop, compiled and aligned differently, and the copies ran at
// speeds up to a third apart, which changed from build to build with unrelated code (the
// "slowdown" was 0.8-0.9, faster during the save than alone, with one build's copies).
[[gnu::noinline]] double compute_chunks(std::vector<double>& buffer, int chunks) {
  double sum = 0;
  for (int chunk = 0; chunk < chunks; ++chunk)
    for (int pass = 0; pass < 64; ++pass)
      for (double& v : buffer) {
        v = v * 1.0000001 + 1e-9;
        sum += v;
      }
  return sum;
}

// Collective. `options.async_saves` consecutive save_asyncs of the snapshot (new global steps
// in `io`'s root), each while every rank runs compute chunks; prints, per save, the time the
// caller was blocked in save_async, the whole save's time (to wait()), and how much slower
// the chunks ran while the background write proceeded than alone (timed just before that
// save). The first save grows the staging pool (unless --reserve-staging reserved it
// beforehand, untimed); the others reuse it.
void measure_async_save(const Job& job, const BenchOptions& options, const Workload& workload, ckptio::CheckpointIO& io,
                        ckptio::Snapshot snapshot, double sync_seconds, int repeat) {
  std::vector<double> buffer(4096, 1.0);
  volatile double sink = 0;
  // Calibrate: chunks that take as long as the synchronous save did.
  const double chunk_start = MPI_Wtime();
  int calibration_chunks = 0;
  while (MPI_Wtime() - chunk_start < 0.2 || calibration_chunks < 3) {
    sink = sink + compute_chunks(buffer, 1);
    ++calibration_chunks;
  }
  const double chunk_seconds = (MPI_Wtime() - chunk_start) / calibration_chunks;
  int chunks = std::max(1, static_cast<int>(sync_seconds / chunk_seconds));
  MPI_Allreduce(MPI_IN_PLACE, &chunks, 1, MPI_INT, MPI_MAX, job.comm);
  auto run_chunks = [&] { sink = sink + compute_chunks(buffer, chunks); };

  const double memcpy_seconds = memcpy_reference_seconds(job, snapshot);
  if (options.reserve_staging) io.reserve_staging(snapshot);
  for (int index = 0; index < options.async_saves; ++index) {
    flush_dirty_pages(job.comm);
    std::this_thread::sleep_for(std::chrono::duration<double>(options.settle_seconds));
    snapshot.running.global_step += 1000;
    // The loop alone, right before each save: on a shared or virtual machine its speed drifts
    // by a fifth or more within a minute, so one measurement before all the saves made the
    // slowdown of each save as noisy as that drift (0.4-1.3 for the same build).
    const double alone = time_collective(job, run_chunks);
    MPI_Barrier(job.comm);
    const double start = MPI_Wtime();
    // CPU of the whole save on this rank but the calling thread's: the background save's
    // (its I/O thread, and anything else it starts); the calling thread's part is the staging.
    const double process_cpu_start = process_cpu_seconds(), caller_cpu_start = thread_cpu_seconds();
    double blocked = MPI_Wtime();
    io.save_async(snapshot);
    blocked = MPI_Wtime() - blocked;
    double blocked_cpu = thread_cpu_seconds() - caller_cpu_start;
    MPI_Allreduce(MPI_IN_PLACE, &blocked, 1, MPI_DOUBLE, MPI_MAX, job.comm);
    double with_io = MPI_Wtime();
    run_chunks();
    with_io = MPI_Wtime() - with_io;
    MPI_Allreduce(MPI_IN_PLACE, &with_io, 1, MPI_DOUBLE, MPI_MAX, job.comm);
    const double caller_cpu_before_wait = thread_cpu_seconds();
    io.wait();
    double total = MPI_Wtime() - start;
    // The caller's CPU in wait() is the background save's too (joining its thread).
    double background_cpu = (process_cpu_seconds() - process_cpu_start) - (caller_cpu_before_wait - caller_cpu_start);
    MPI_Allreduce(MPI_IN_PLACE, &background_cpu, 1, MPI_DOUBLE, MPI_SUM, job.comm);
    MPI_Allreduce(MPI_IN_PLACE, &blocked_cpu, 1, MPI_DOUBLE, MPI_SUM, job.comm);
    MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_DOUBLE, MPI_MAX, job.comm);

    nlohmann::ordered_json record = measurement("save_async", repeat, job, job.size, workload, total);
    record["async_index"] = index;
    record["staging_reserved"] = options.reserve_staging;
    record["blocked_seconds"] = blocked;
    record["sync_save_seconds"] = sync_seconds;
    record["compute_alone_seconds"] = alone;
    record["compute_during_save_seconds"] = with_io;
    record["staging_bytes"] = io.staging_bytes();
    record["memcpy_seconds"] = memcpy_seconds;
    record["background_cpu_seconds"] = background_cpu;  // all ranks together
    record["blocked_cpu_seconds"] = blocked_cpu;        // all ranks together
    print(job, record);
  }
}

// Collective. What a user without ckptio might write: every rank writes its blocks one after
// the other into a file of its own and fsyncs it.
void measure_posix_file_per_rank(const Job& job, const BenchOptions& options, const Workload& workload,
                                 const std::vector<LocalBlock>& blocks, int repeat) {
  const fs::path file = options.dir / ("posix_baseline.rank" + std::to_string(job.rank));
  flush_dirty_pages(job.comm);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.settle_seconds));
  double cpu = 0;
  const double seconds = time_collective(
      job,
      [&] {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) throw std::runtime_error("cannot create " + file.string());
        for (const LocalBlock& block : blocks) {
          const char* p = reinterpret_cast<const char*>(block.data.get());
          std::size_t left = block.elements * sizeof(float);
          while (left > 0) {
            const ssize_t n = ::write(fd, p, left);
            if (n <= 0) throw std::runtime_error("write to " + file.string() + " failed");
            p += n;
            left -= static_cast<std::size_t>(n);
          }
        }
        if (::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error("fsync of " + file.string() + " failed");
      },
      &cpu);
  print(job, measurement("posix_file_per_rank", repeat, job, job.size, workload, seconds, cpu));
  fs::remove(file);
}

// Collective. The same, into one file that all ranks share: every rank pwrite()s each block at
// its place in the tensors laid out one after the other, then fsyncs; the last rank to finish
// its fsync has made the whole file durable. Separates the cost of sharing one file from
// HDF5's and MPI-IO's.
void measure_posix_shared_file(const Job& job, const BenchOptions& options, const Workload& workload,
                               const std::vector<LocalBlock>& blocks, int repeat) {
  const fs::path file = options.dir / "posix_baseline.shared";
  std::vector<std::uint64_t> tensor_offset(static_cast<std::size_t>(workload.tensor_count()) + 1, 0);
  const std::uint64_t row_bytes = static_cast<std::uint64_t>(workload.columns) * sizeof(float);
  for (int t = 0; t < workload.tensor_count(); ++t)
    tensor_offset[t + 1] = tensor_offset[t] + static_cast<std::uint64_t>(workload.rows[t]) * row_bytes;
  if (job.is_root()) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::close(fd) != 0) throw std::runtime_error("cannot create " + file.string());
  }
  flush_dirty_pages(job.comm);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.settle_seconds));
  double cpu = 0;
  const double seconds = time_collective(
      job,
      [&] {
        const int fd = ::open(file.c_str(), O_WRONLY);
        if (fd < 0) throw std::runtime_error("cannot open " + file.string());
        for (const LocalBlock& block : blocks) {
          const char* p = reinterpret_cast<const char*>(block.data.get());
          std::size_t left = block.elements * sizeof(float);
          auto offset = static_cast<off_t>(tensor_offset[block.tensor] +
                                           static_cast<std::uint64_t>(block.rows.begin) * row_bytes);
          while (left > 0) {
            const ssize_t n = ::pwrite(fd, p, left, offset);
            if (n <= 0) throw std::runtime_error("write to " + file.string() + " failed");
            p += n;
            offset += n;
            left -= static_cast<std::size_t>(n);
          }
        }
        if (::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error("fsync of " + file.string() + " failed");
      },
      &cpu);
  print(job, measurement("posix_shared_file", repeat, job, job.size, workload, seconds, cpu));
  remove_when_all_done(job, file);
}

// Collective. Every --posix-baseline writer in turn.
void measure_posix_baselines(const Job& job, const BenchOptions& options, const Workload& workload,
                             const std::vector<LocalBlock>& blocks, int repeat) {
  measure_posix_file_per_rank(job, options, workload, blocks, repeat);
  measure_posix_shared_file(job, options, workload, blocks, repeat);
}

// Collective. Drops the page cache (when allowed), then waits --settle seconds: the state
// before every timed write that also reads from storage.
bool prepare_cold_write(const Job& job, const BenchOptions& options) {
  const bool dropped = prepare_cold_read(job, options);
  if (options.keep_cache) flush_dirty_pages(job.comm);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.settle_seconds));
  return dropped;
}

// Runs `cp from to` (no shell) on this rank; throws unless it succeeds.
void run_cp(const fs::path& from, const fs::path& to) {
  std::string program = "cp", source = from.string(), target = to.string();
  char* argv[] = {program.data(), source.data(), target.data(), nullptr};
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "cp", nullptr, nullptr, argv, environ) != 0) throw std::runtime_error("cannot run cp");
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("cp " + source + " " + target + " failed");
}

void fsync_or_throw(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0 || ::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error("cannot fsync " + path.string());
}

// Collective. Exports every group of the checkpoint at `path` to a safetensors file of its
// own with every rank (export_safetensors: MPI-IO writes, fsync of each file, rename, fsync
// of the folder), timed from a barrier before the first group to the slowest rank's end.
void measure_export(const Job& job, const BenchOptions& options, const Workload& workload, const fs::path& path,
                    int repeat) {
  const fs::path out = options.dir / ("export." + std::to_string(repeat));
  std::set<std::string> groups;
  for (int t = 0; t < workload.tensor_count(); ++t) groups.insert(workload.group_of(t));
  if (job.is_root()) fs::create_directories(out);
  const bool cache_dropped = prepare_cold_write(job, options);
  std::uint64_t exported = 0;
  double cpu = 0;
  const double seconds = time_collective(
      job,
      [&] {
        for (const std::string& group : groups)
          exported += ckptio::export_safetensors(job.comm, path, group, out / (group + ".safetensors")).tensor_bytes;
      },
      &cpu);
  if (exported != workload.total_bytes())
    throw std::runtime_error("export wrote " + std::to_string(exported) + " tensor bytes, expected " +
                             std::to_string(workload.total_bytes()));
  nlohmann::ordered_json record = measurement("export", repeat, job, job.size, workload, seconds, cpu);
  record["files"] = groups.size();
  record["cache_dropped"] = cache_dropped;
  print(job, record);
  remove_when_all_done(job, out);
}

// Collective. The reference for the export: `cp` of the checkpoint file (the payload plus
// about 20 KB) on the same filesystem, made as durable as the export's files (fsync of the
// copy and of its folder), timed on rank 0 from a barrier.
void measure_export_cp(const Job& job, const BenchOptions& options, const Workload& workload, const fs::path& path,
                       int repeat) {
  const fs::path copy = options.dir / ("cp_reference." + std::to_string(repeat));
  const bool cache_dropped = prepare_cold_write(job, options);
  double cpu = 0;
  const double seconds = time_collective(
      job,
      [&] {
        if (!job.is_root()) return;
        run_cp(path, copy);
        fsync_or_throw(copy, O_RDONLY);
        fsync_or_throw(options.dir, O_RDONLY | O_DIRECTORY);
      },
      &cpu);
  nlohmann::ordered_json record = measurement("export_cp", repeat, job, job.size, workload, seconds, cpu);
  if (job.is_root()) record["file_bytes"] = fs::file_size(copy);
  record["cache_dropped"] = cache_dropped;
  print(job, record);
  remove_when_all_done(job, copy);
}

// Collective. One save into a fresh root, then the loads from it; removes the root after.
void run_repeat(const Job& job, const BenchOptions& options, const Workload& workload, const ckptio::Snapshot& snapshot,
                int repeat) {
  const fs::path root = options.dir / ("save_load_bench." + std::to_string(repeat));
  if (job.is_root()) fs::remove_all(root);
  MPI_Barrier(job.comm);
  {
    ckptio::CheckpointOptions checkpoint_options;
    checkpoint_options.alignment = options.alignment;
    ckptio::CheckpointIO io(job.comm, root, checkpoint_options);
    // Earlier writes (the previous repeat's file, its removal) must not be flushed on our clock.
    flush_dirty_pages(job.comm);
    // Under a hypervisor that takes back freed guest memory (virtio-balloon free page
    // reporting), writing into memory freed a moment ago is several times faster than into
    // memory returned to the host; waiting puts every timed write in the same, slow state.
    std::this_thread::sleep_for(std::chrono::duration<double>(options.settle_seconds));
    fs::path path;
    double cpu = 0;
    const double seconds = time_collective(
        job, [&] { path = io.save(snapshot); }, &cpu);
    nlohmann::ordered_json record = measurement("save", repeat, job, job.size, workload, seconds, cpu);
    if (job.is_root()) record["file_bytes"] = fs::file_size(path);
    print(job, record);

    const std::int64_t global_step = snapshot.running.global_step;
    measure_load(job, options, workload, io, path, "load", saved_parts(job, workload), repeat, global_step);
    if (options.reshard_ranks > 0) {
      measure_load(job, options, workload, io, path, "load_resharded", options.reshard_ranks, repeat, global_step);
    }
    if (options.export_safetensors) {
      // The reference first or second as the comparison writers (--baselines-first).
      if (options.baselines_first) measure_export_cp(job, options, workload, path, repeat);
      measure_export(job, options, workload, path, repeat);
      if (!options.baselines_first) measure_export_cp(job, options, workload, path, repeat);
    }
    if (options.async) measure_async_save(job, options, workload, io, snapshot, seconds, repeat);
    if (options.compare_verify) {  // the cost of checksum verification on load
      measure_load(job, options, workload, io, path, "load_unverified", saved_parts(job, workload), repeat, global_step,
                   false);
      if (options.reshard_ranks > 0)
        measure_load(job, options, workload, io, path, "load_resharded_unverified", options.reshard_ranks, repeat,
                     global_step, false);
    }
  }
  remove_when_all_done(job, root);
}

// Parses the command line on every rank. Returns the exit code to leave with, or -1 to run.
int parse_options(int argc, char** argv, const Job& job, BenchOptions& options) {
  CLI::App app{"ckptio save/load throughput on a synthetic state of F32 tensors split in row blocks"};
  app.add_option("--bytes", options.bytes, "total bytes of tensor data (e.g. 2GiB, 128MiB, 4096)")
      ->transform(CLI::AsSizeValue(true))
      ->capture_default_str();
  app.add_option("--tensors", options.tensors, "number of tensors")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--columns", options.columns, "F32 columns per tensor row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dir", options.dir, "folder on the filesystem to measure; each repeat uses a fresh root in it")
      ->required();
  app.add_option("--repeats", options.repeats, "save+load rounds, each into a fresh root")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--reshard-ranks", options.reshard_ranks,
                 "also load in the row decomposition of K ranks (K <= ranks; blocks dealt round robin); 0: no")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--compare-verify", options.compare_verify,
               "also load with checksum verification off (ops load_unverified, load_resharded_unverified)");
  app.add_flag("--keep-cache", options.keep_cache, "do not drop the page cache before loads (measures warm loads)");
  app.add_option("--settle", options.settle_seconds,
                 "seconds to wait before each timed save, so that freed memory has settled (see PERFORMANCE.md)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--workload", options.workload,
                 "blocks: --tensors equal tensors of --columns; llm: 300 parameters of mixed sizes, 2 optimizer "
                 "tensors each and an EMA copy, about --bytes in all; moe: --tensors expert matrices of 256 B to 64 "
                 "KiB with optimizer and EMA copies, each whole on one rank (--bytes and --columns unused)")
      ->check(CLI::IsMember({"blocks", "llm", "moe"}))
      ->capture_default_str();
  app.add_flag("--print-workload-bytes", options.print_workload_bytes,
               "print the workload's bytes of tensor data and exit (bench/run's reference size for --workload moe)");
  app.add_flag("--posix-baseline", options.posix_baseline,
               "also time the plain alternatives: every rank write()s its blocks to a file of its own and fsyncs it "
               "(op posix_file_per_rank), and every rank pwrite()s them into one shared file (op posix_shared_file)");
  app.add_flag("--export", options.export_safetensors,
               "also time exporting every group to safetensors on every rank (op export) and, as its reference, "
               "cp of the checkpoint file plus fsync (op export_cp)");
  app.add_flag("--baselines-first", options.baselines_first,
               "run the references (--posix-baseline, export's cp) before ckptio's save and export in each repeat");
  app.add_option("--alignment", options.alignment,
                 "CheckpointOptions::alignment: datasets of at least this many bytes start at a multiple of it")
      ->transform(CLI::AsSizeValue(true))
      ->capture_default_str();
  app.add_flag("--async", options.async,
               "also measure save_async: time blocked, whole save, and a compute loop's slowdown meanwhile");
  app.add_option("--async-saves", options.async_saves,
                 "consecutive save_asyncs per repeat with --async (the first grows the staging pool, the others "
                 "reuse it)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--reserve-staging", options.reserve_staging,
               "with --async: reserve the staging pool (CheckpointIO::reserve_staging) before the first save_async, "
               "outside the timed region");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (job.is_root()) return app.exit(e);
    return e.get_exit_code();
  }
  if (options.reshard_ranks > job.size) {
    if (job.is_root()) {
      std::cerr << "--reshard-ranks " << options.reshard_ranks << " exceeds the " << job.size
                << " ranks: a rank holds one piece per tensor, so it cannot take several blocks of one tensor\n";
    }
    return 2;
  }
  return -1;
}

int run(int argc, char** argv) {
  Job job;
  MPI_Comm_rank(job.comm, &job.rank);
  MPI_Comm_size(job.comm, &job.size);
  BenchOptions options;
  if (const int code = parse_options(argc, argv, job, options); code >= 0) return code;

  Workload workload;
  try {
    workload = options.workload == "llm"   ? make_llm_workload(options.bytes)
               : options.workload == "moe" ? make_moe_workload(options.tensors)
                                           : make_workload(options.bytes, options.tensors, options.columns, job.size);
  } catch (const std::invalid_argument& e) {
    // Every rank reached the same verdict from the same arguments: say it once.
    if (job.is_root()) std::cerr << e.what() << "\n";
    return 2;
  }
  if (options.print_workload_bytes) {
    if (job.is_root()) std::cout << workload.total_bytes() << std::endl;
    return 0;
  }
  if (job.is_root()) fs::create_directories(options.dir);
  MPI_Barrier(job.comm);

  std::vector<LocalBlock> blocks = take_blocks(workload, saved_parts(job, workload), job.rank, job.size);
  for (LocalBlock& block : blocks) fill_pattern(workload, block);
  for (int repeat = 0; repeat < options.repeats; ++repeat) {
    const ckptio::Snapshot snapshot = make_snapshot(workload, blocks, repeat + 1);
    if (options.posix_baseline && options.baselines_first)
      measure_posix_baselines(job, options, workload, blocks, repeat);
    run_repeat(job, options, workload, snapshot, repeat);
    if (options.posix_baseline && !options.baselines_first)
      measure_posix_baselines(job, options, workload, blocks, repeat);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ckptio::bench::run_mpi_benchmark("save_load_bench", argc, argv, run); }
