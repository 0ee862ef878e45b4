// Host memory ckptio needs beyond the training state: peak extra resident memory per rank of
// a synchronous save and load, a save_async against the staging it reports, an export to
// safetensors, and the drift over many save_async cycles (bench/memory_scenarios.hpp). Prints
// one JSON line per measurement and, on rank 0, a table with the bounds of docs/PERFORMANCE.md.
//
//   mpiexec -n 2 ckptio_bench_memory --dir DIR [--state 1GiB --state 4GiB] [--export 8GiB] [--cycles 200]

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "memory_scenarios.hpp"
#include "mpi_main.hpp"

namespace fs = std::filesystem;
using namespace ckptio_bench;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::string size_label(std::uint64_t bytes) {
  if (bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  return std::to_string(bytes >> 20) + " MiB";
}

struct Row {
  std::string what;
  double mib = 0;
  std::string bound;
  bool within = true;
};

int run(int argc, char** argv) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  fs::path dir;
  std::vector<std::uint64_t> states;
  std::uint64_t export_bytes = 8 * kGiB;
  int cycles = 200;
  CLI::App app{"peak extra resident memory per rank of ckptio's save, load, save_async and export"};
  app.add_option("--dir", dir, "folder to write into (everything written is removed)")->required();
  app.add_option("--state", states, "state sizes for save, load and save_async (default 1GiB and 4GiB)")
      ->transform(CLI::AsSizeValue(true));
  app.add_option("--export", export_bytes, "size of the group exported to safetensors; 0 skips it")
      ->transform(CLI::AsSizeValue(true))
      ->capture_default_str();
  app.add_option("--cycles", cycles, "save_async cycles for the drift; 0 skips it")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return rank == 0 ? app.exit(e) : e.get_exit_code();
  }
  if (states.empty()) states = {kGiB, 4 * kGiB};
  if (rank == 0) fs::create_directories(dir);
  MPI_Barrier(MPI_COMM_WORLD);

  std::vector<Row> rows;
  auto emit = [&](nlohmann::ordered_json record) {
    record["bench"] = "memory";
    record["ranks"] = size;
    if (rank == 0) std::cout << record.dump() << std::endl;
  };
  for (const std::uint64_t bytes : states) {
    const std::string state = size_label(bytes);
    const SaveLoadMemory m = measure_save_load_memory(MPI_COMM_WORLD, dir, bytes);
    emit({{"op", "save"}, {"state_bytes", bytes}, {"extra_bytes", m.save_extra_bytes}});
    emit({{"op", "load"}, {"state_bytes", bytes}, {"extra_bytes", m.load_extra_bytes}});
    rows.push_back({"save, " + state, m.save_extra_bytes / kMiB, "<= 64", m.save_extra_bytes <= 64 * kMiB});
    rows.push_back({"load, " + state, m.load_extra_bytes / kMiB, "<= 64", m.load_extra_bytes <= 64 * kMiB});
    const SaveAsyncMemory a = measure_save_async_memory(MPI_COMM_WORLD, dir, bytes);
    emit({{"op", "save_async"},
          {"state_bytes", bytes},
          {"extra_bytes", a.extra_bytes},
          {"staging_bytes", a.staging_bytes},
          {"extra_over_staging_bytes", a.extra_over_staging_bytes}});
    rows.push_back({"save_async, " + state + ", over its staging (" +
                        std::to_string(static_cast<long long>(a.staging_bytes / kMiB)) + " MiB)",
                    a.extra_over_staging_bytes / kMiB, "<= 64", a.extra_over_staging_bytes <= 64 * kMiB});
  }
  if (export_bytes > 0) {
    const ExportMemory e = measure_export_memory(MPI_COMM_WORLD, dir, export_bytes);
    emit({{"op", "export"}, {"group_bytes", export_bytes}, {"extra_bytes", e.extra_bytes}});
    rows.push_back({"export of a " + size_label(export_bytes) + " group", e.extra_bytes / kMiB, "<= 256",
                    e.extra_bytes <= 256 * kMiB});
  }
  if (cycles > 0) {
    // glibc's default first, then with its mmap threshold fixed (for the rest of the run).
    for (const bool fixed : {false, true}) {
      const SaveAsyncDrift d = measure_save_async_drift(MPI_COMM_WORLD, dir, cycles, fixed);
      emit({{"op", "save_async_drift"},
            {"cycles", d.cycles},
            {"warmup_cycles", d.warmup_cycles},
            {"fixed_mmap_threshold", fixed},
            {"drift_bytes", d.drift_bytes}});
      rows.push_back({std::to_string(cycles) + " save_async cycles, drift" +
                          (fixed ? ", mmap threshold fixed" : ", glibc default"),
                      d.drift_bytes / kMiB, "< 1", d.drift_bytes < static_cast<std::int64_t>(kMiB)});
    }
  }
  if (rank == 0) {
    std::printf("\npeak extra resident memory per rank (largest over %d ranks), MiB\n", size);
    std::printf("%-52s %10s   %-8s %s\n", "measurement", "MiB", "bound", "");
    for (const Row& row : rows)
      std::printf("%-52s %10.2f   %-8s %s\n", row.what.c_str(), row.mib, row.bound.c_str(),
                  row.within ? "within" : "EXCEEDED");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ckptio::bench::run_mpi_benchmark("memory_bench", argc, argv, run); }
