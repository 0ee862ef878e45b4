// The GPU path against the device's own copy speed: for each size, pinned host <-> device
// copies (cudaMemcpyAsync on a stream, then a wait, into page-locked memory: the ceiling),
// next to ckptio staging a device shard of that size (the time blocked in save_async, with
// the staging reserved beforehand) and loading a checkpoint of it into device memory (the
// file in the page cache, so that the load is bound by the copy, not by the disk). One rank,
// one GPU. Prints medians and ratios as one table; run through bench/gpu-check.
//
//   ckptio_bench_gpu --dir DIR [--size 1GiB --size 4GiB --size 16GiB] [--repeats 3]
//
// Exit codes: 0 measured; 1 failed; 2 usage; 3 ckptio built without CUDA; 4 no usable CUDA device.

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "mpi_main.hpp"

namespace fs = std::filesystem;
namespace cuda = ckptio::detail::cuda;

namespace {

constexpr int kNoCudaBuild = 3;
constexpr int kNoDevice = 4;
constexpr std::int64_t kColumns = 1024;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

template <typename Operation>
double seconds_of(Operation&& operation) {
  const double start = MPI_Wtime();
  operation();
  return MPI_Wtime() - start;
}

// Device memory freed on destruction.
struct DeviceBuffer {
  void* data;
  explicit DeviceBuffer(std::size_t bytes) : data(cuda::alloc_device(bytes, 0)) {}
  ~DeviceBuffer() { cuda::free_device(data, 0); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Page-locked host memory freed on destruction; throws where it cannot be had.
struct PinnedBuffer {
  void* data;
  std::size_t bytes;
  bool pinned = false;
  explicit PinnedBuffer(std::size_t n) : data(cuda::alloc_host(n, pinned)), bytes(n) {
    if (!pinned) {
      cuda::free_host(data, bytes, pinned);
      throw std::runtime_error("cannot allocate " + std::to_string(n) + " bytes of page-locked host memory");
    }
  }
  ~PinnedBuffer() { cuda::free_host(data, bytes, pinned); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
};

// A snapshot of one F32 tensor of `bytes` held whole in device memory.
ckptio::Snapshot device_snapshot(void* data, std::uint64_t bytes, std::int64_t step) {
  ckptio::Snapshot snapshot;
  ckptio::TensorShard shard = ckptio::TensorShard::whole(
      data, ckptio::DType::F32, {static_cast<std::int64_t>(bytes / (kColumns * sizeof(float))), kColumns});
  shard.device = 0;
  snapshot.model.emplace();
  snapshot.model->add("w", shard);
  snapshot.running.global_step = step;
  return snapshot;
}

struct Row {
  std::uint64_t bytes = 0;
  double d2h = 0, staging = 0, h2d = 0, load = 0;
};

Row measure(const fs::path& dir, std::uint64_t bytes, int repeats) {
  bytes = bytes / (kColumns * sizeof(float)) * (kColumns * sizeof(float));
  Row row;
  row.bytes = bytes;
  const double gb = static_cast<double>(bytes) / 1e9;
  DeviceBuffer source(bytes), target(bytes);
  {
    PinnedBuffer host(bytes);
    std::memset(host.data, 0x5A, bytes);
    cuda::copy_host_to_device(source.data, host.data, bytes, 0);  // also the warm-up
    std::vector<double> d2h, h2d;
    for (int r = 0; r < repeats; ++r) {
      d2h.push_back(gb / seconds_of([&] { cuda::copy_device_to_host(host.data, source.data, bytes, 0); }));
      h2d.push_back(gb / seconds_of([&] { cuda::copy_host_to_device(target.data, host.data, bytes, 0); }));
    }
    row.d2h = median(d2h);
    row.h2d = median(h2d);
  }
  const fs::path root = dir / ("gpu-bench-" + std::to_string(bytes));
  fs::remove_all(root);
  {
    ckptio::CheckpointOptions options;
    options.keep_last = 1;
    ckptio::CheckpointIO io(MPI_COMM_WORLD, root, options);
    ckptio::Snapshot snapshot = device_snapshot(source.data, bytes, 1);
    io.reserve_staging(snapshot);
    std::vector<double> staging, load;
    fs::path path;
    for (int r = 0; r < repeats; ++r) {
      snapshot.running.global_step = r + 1;
      staging.push_back(gb / seconds_of([&] { path = io.save_async(snapshot); }));
      io.wait();
    }
    const ckptio::Snapshot targets = device_snapshot(target.data, bytes, 0);
    io.load(path, targets);  // untimed: brings the file into the page cache
    for (int r = 0; r < repeats; ++r) load.push_back(gb / seconds_of([&] { io.load(path, targets); }));
    row.staging = median(staging);
    row.load = median(load);
  }
  fs::remove_all(root);
  return row;
}

int run(int argc, char** argv) {
  fs::path dir;
  std::vector<std::uint64_t> sizes;
  int repeats = 3;
  bool probe = false;
  CLI::App app{"pinned cudaMemcpy D2H/H2D against ckptio's staging of and load into device memory"};
  app.add_option("--dir", dir, "folder for the checkpoints (removed after each size)");
  app.add_option("--size", sizes, "sizes of the device shard (default 1GiB, 4GiB, 16GiB)")
      ->transform(CLI::AsSizeValue(true));
  app.add_option("--repeats", repeats, "measurements per figure; medians are reported")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--probe", probe, "only check that ckptio has CUDA and a device is usable");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!cuda::device_supported()) {
    std::cerr << "ckptio_bench_gpu: ckptio was built without CUDA (configure with -DCKPTIO_WITH_CUDA=ON)\n";
    return kNoCudaBuild;
  }
  if (cuda::device_count() == 0) {
    std::cerr << "ckptio_bench_gpu: no usable CUDA device (no GPU, or the driver refused)\n";
    return kNoDevice;
  }
  if (probe) {
    std::cout << "ckptio_bench_gpu: " << cuda::device_count() << " CUDA device(s) usable\n";
    return 0;
  }
  if (dir.empty()) {
    std::cerr << "ckptio_bench_gpu: --dir is required\n";
    return 2;
  }
  if (sizes.empty()) sizes = {std::uint64_t{1} << 30, std::uint64_t{4} << 30, std::uint64_t{16} << 30};
  fs::create_directories(dir);
  std::vector<Row> rows;
  for (const std::uint64_t bytes : sizes) {
    rows.push_back(measure(dir, bytes, repeats));
    std::cerr << "ckptio_bench_gpu: " << bytes << " bytes measured\n";
  }
  std::printf("GPU path, 1 rank, device 0, medians of %d; GB/s\n", repeats);
  std::printf("%10s %10s %10s %10s   %10s %10s %10s\n", "GiB", "D2H", "staging", "ratio", "H2D", "load", "ratio");
  for (const Row& r : rows)
    std::printf("%10.2f %10.2f %10.2f %10.2f   %10.2f %10.2f %10.2f\n", static_cast<double>(r.bytes) / (1 << 30), r.d2h,
                r.staging, r.staging / r.d2h, r.h2d, r.load, r.load / r.h2d);
  std::printf("goals: staging >= 0.9 x D2H (pinned cudaMemcpy), load >= 0.9 x H2D (file in the page cache)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ckptio::bench::run_mpi_benchmark("ckptio_bench_gpu", argc, argv, run); }
