// The node-local level against the shared root (docs/MULTILEVEL.md, docs/PERFORMANCE.md):
// for the same synthetic state, the time of a shared-root save and of a local save (with and
// without its partner copy), a plain memcpy of each rank's bytes (what a local save blocks
// the training loop for, at best), a local save_async (the time it blocks, then the time its
// background part takes), and a restart (load_latest in a fresh CheckpointIO) from
// either level. Medians over the repeats; every figure is the slowest rank's.
//
//   mpiexec -n 4 ckptio_bench_multilevel --shared-dir DISK_DIR --local-dir /dev/shm/DIR --bytes 512MiB
//
// Run one rank per node or, on one host, CKPTIO_TEST_RANKS_PER_NODE=k (nodes of k ranks, each
// with its own folder under --local-dir, the partner copy over MPI as between nodes). The page
// cache is dropped before every restart from the shared root when the process may (root):
// otherwise that restart reads memory and the table says so.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "ckptio/checkpoint_io.hpp"
#include "mpi_main.hpp"
#include "page_cache.hpp"
#include "pattern.hpp"
#include "synthetic_state.hpp"

namespace fs = std::filesystem;
using namespace ckptio_bench;

namespace {

struct Options {
  std::uint64_t bytes = std::uint64_t{256} << 20;
  int tensors = 16;
  std::int64_t columns = 1024;
  int repeats = 5;
  std::string shared_dir;
  std::string local_dir;
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The slowest rank's seconds for `fn`, which every rank runs (collective or not).
template <class F>
double timed(F&& fn) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = now_seconds();
  fn();
  double seconds = now_seconds() - start;
  MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return seconds;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string filesystem_type(const fs::path& dir) {
  // The type as /proc/mounts names it, for the longest mount point that contains dir.
  std::FILE* mounts = std::fopen("/proc/mounts", "r");
  if (!mounts) return "unknown";
  char device[512], point[512], type[64];
  std::string best_point, best_type = "unknown";
  const std::string path = fs::weakly_canonical(dir).string();
  while (std::fscanf(mounts, "%511s %511s %63s %*[^\n]", device, point, type) == 3) {
    const std::string p = point;
    if ((path == p || path.rfind(p == "/" ? p : p + "/", 0) == 0) && p.size() >= best_point.size()) {
      best_point = p;
      best_type = type;
    }
  }
  std::fclose(mounts);
  return best_type;
}

void check_restored(const Workload& workload, const std::vector<LocalBlock>& blocks, const char* what) {
  std::uint64_t mismatches = 0;
  for (const auto& block : blocks) mismatches += check_pattern(workload, block).mismatches;
  MPI_Allreduce(MPI_IN_PLACE, &mismatches, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (mismatches) throw std::runtime_error(std::string(what) + ": " + std::to_string(mismatches) + " wrong elements");
}

int run(int argc, char** argv) {
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Options options;
  CLI::App app{"ckptio's node-local level against the shared root: save, partner copy and restart times"};
  app.add_option("--bytes", options.bytes, "total bytes of tensor data (e.g. 512MiB)")
      ->transform(CLI::AsSizeValue(true))
      ->capture_default_str();
  app.add_option("--tensors", options.tensors, "number of tensors")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--repeats", options.repeats, "rounds; medians are reported")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--shared-dir", options.shared_dir, "folder for the shared roots (the parallel file system)")
      ->required();
  app.add_option("--local-dir", options.local_dir, "folder for the local levels (node-local storage, e.g. /dev/shm)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return rank == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }

  const Workload workload = make_workload(options.bytes, options.tensors, options.columns, size);
  std::vector<LocalBlock> blocks = take_blocks(workload, size, rank, size);
  std::size_t my_bytes = 0;
  for (auto& block : blocks) {
    fill_pattern(workload, block);
    my_bytes += block.elements * sizeof(float);
  }
  std::vector<char> memcpy_target(my_bytes);
  std::memset(memcpy_target.data(), 1, my_bytes);  // faulted in, as a reused staging buffer is

  const fs::path shared = fs::path(options.shared_dir) / "multilevel-bench";
  const fs::path local = fs::path(options.local_dir) / "multilevel-bench";
  if (rank == 0) {
    fs::remove_all(shared);
    fs::remove_all(local);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  // Roots: the shared level alone; a local level with its partner copy (its own shared root,
  // never flushed to: flush_every is larger than the saves); the same without the copy.
  ckptio::CheckpointOptions shared_only;
  shared_only.keep_last = 2;
  ckptio::CheckpointOptions with_partner = shared_only;
  with_partner.local_dir = local / "partner1";
  with_partner.flush_every = 1 << 30;
  with_partner.partner_copies = 1;
  with_partner.local_keep_last = 2;
  ckptio::CheckpointOptions no_partner = with_partner;
  no_partner.local_dir = local / "partner0";
  no_partner.partner_copies = 0;
  ckptio::CheckpointOptions in_background = with_partner;
  in_background.local_dir = local / "async1";

  std::map<std::string, std::vector<double>> seconds;
  std::string cache_note;
  int nodes = 0;
  for (int repeat = 0; repeat < options.repeats; ++repeat) {
    const std::int64_t step = repeat + 1;
    ckptio::Snapshot snapshot = make_snapshot(workload, blocks, step);
    {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "shared", shared_only);
      flush_dirty_pages(MPI_COMM_WORLD);
      seconds["shared save"].push_back(timed([&] { io.save(snapshot); }));
    }
    {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "root-of-local1", with_partner);
      seconds["local save, 1 partner copy"].push_back(timed([&] { io.save(snapshot); }));
    }
    {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "root-of-local0", no_partner);
      seconds["local save, no partner copy"].push_back(timed([&] { io.save(snapshot); }));
    }
    {
      // save_async of a local save: blocked for the staging copy (into a pool reserved
      // beforehand, as a training loop does), then written and copied in the background.
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "root-of-local-async", in_background);
      io.reserve_staging(snapshot);
      seconds["local save_async: blocked"].push_back(timed([&] { io.save_async(snapshot); }));
      seconds["local save_async: background"].push_back(timed([&] { io.wait(); }));
    }
    seconds["memcpy of each rank's bytes"].push_back(timed([&] {
      std::size_t offset = 0;
      for (const auto& block : blocks) {
        std::memcpy(memcpy_target.data() + offset, block.data.get(), block.elements * sizeof(float));
        offset += block.elements * sizeof(float);
      }
    }));
    // Restarts: a fresh CheckpointIO each, as a restarted job step makes.
    for (auto& block : blocks) poison(block);
    const CacheDrop drop = drop_page_cache(MPI_COMM_WORLD);
    cache_note = drop.dropped ? "page cache dropped before each" : "page cache NOT dropped (" + drop.why_not + ")";
    seconds["restart from the shared root"].push_back(timed([&] {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "shared", shared_only);
      if (!io.load_latest(snapshot)) throw std::runtime_error("nothing to restart from in the shared root");
    }));
    check_restored(workload, blocks, "restart from the shared root");
    for (auto& block : blocks) poison(block);
    seconds["restart from the local level"].push_back(timed([&] {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, shared / "root-of-local1", with_partner);
      auto result = io.load_latest(snapshot);
      if (!result || result->level != "local") throw std::runtime_error("the restart did not use the local level");
    }));
    check_restored(workload, blocks, "restart from the local level");
    int node_leader = 0;
    MPI_Comm node_comm = MPI_COMM_NULL;
    const char* simulated = std::getenv("CKPTIO_TEST_RANKS_PER_NODE");
    const int per_node = simulated ? std::atoi(simulated) : 0;
    if (per_node > 0)
      MPI_Comm_split(MPI_COMM_WORLD, rank / per_node, rank, &node_comm);
    else
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_comm);
    int node_rank = 0;
    MPI_Comm_rank(node_comm, &node_rank);
    MPI_Comm_free(&node_comm);
    node_leader = node_rank == 0 ? 1 : 0;
    MPI_Allreduce(&node_leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  }

  if (rank == 0) {
    const double gb = static_cast<double>(workload.total_bytes()) / 1e9;
    std::printf("multi-level benchmark: %.1f MiB in %d tensors on %d ranks, %d node(s)%s; %d repeats, medians\n",
                static_cast<double>(workload.total_bytes()) / (1 << 20), workload.tensor_count(), size, nodes,
                std::getenv("CKPTIO_TEST_RANKS_PER_NODE") ? " (simulated on one host)" : "", options.repeats);
    std::printf("shared root: %s (%s); local level: %s (%s); restarts from the shared root: %s\n\n", shared.c_str(),
                filesystem_type(shared).c_str(), local.c_str(), filesystem_type(local).c_str(), cache_note.c_str());
    std::printf("%-30s %10s %10s\n", "", "median s", "GB/s");
    for (const char* what : {"shared save", "local save, 1 partner copy", "local save, no partner copy",
                             "local save_async: blocked", "local save_async: background", "memcpy of each rank's bytes",
                             "restart from the shared root", "restart from the local level"}) {
      const double m = median(seconds[what]);
      std::printf("%-30s %10.4f %10.2f\n", what, m, gb / m);
    }
    const double shared_save = median(seconds["shared save"]);
    const double local_save = median(seconds["local save, 1 partner copy"]);
    const double local_no_copy = median(seconds["local save, no partner copy"]);
    const double copy = median(seconds["memcpy of each rank's bytes"]);
    const double shared_restart = median(seconds["restart from the shared root"]);
    const double local_restart = median(seconds["restart from the local level"]);
    std::printf("\nlocal save / shared save          %.3f (%.1fx faster)\n", local_save / shared_save,
                shared_save / local_save);
    std::printf("restart local / restart shared    %.3f (%.1fx faster)\n", local_restart / shared_restart,
                shared_restart / local_restart);
    const double blocked = median(seconds["local save_async: blocked"]);
    std::printf("local save blocked / memcpy       %.1fx (save), %.1fx (save_async)\n", local_save / copy,
                blocked / copy);
    std::printf("partner copy (difference)         %.4f s, %.0f%% of the local save\n", local_save - local_no_copy,
                100.0 * (local_save - local_no_copy) / local_save);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    fs::remove_all(shared);
    fs::remove_all(local);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ckptio::bench::run_mpi_benchmark("multilevel_bench", argc, argv, run); }
