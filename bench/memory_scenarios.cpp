#include "memory_scenarios.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "ckptio/safetensors.hpp"
#include "peak_rss.hpp"

namespace fs = std::filesystem;

namespace ckptio_bench {
namespace {

constexpr std::int64_t kColumns = 1024;  // F32 columns per row: 4 KiB rows

// Private anonymous memory, never written unless the caller writes it: reads see zeros from
// the kernel's shared zero page, which is not counted as resident.
class UntouchedMemory {
 public:
  explicit UntouchedMemory(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
  }
  ~UntouchedMemory() {
    if (data_) ::munmap(data_, bytes_);
  }
  UntouchedMemory(UntouchedMemory&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  UntouchedMemory(const UntouchedMemory&) = delete;
  UntouchedMemory& operator=(const UntouchedMemory&) = delete;
  UntouchedMemory& operator=(UntouchedMemory&&) = delete;
  char* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  char* data_ = nullptr;
  std::size_t bytes_ = 0;
};

struct Rank {
  int rank = 0;
  int size = 1;
  explicit Rank(MPI_Comm comm) {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
  }
};

// `tensors` F32 tensors of [rows, kColumns] holding `bytes` together (rounded down to whole
// rows), split in row blocks over the ranks, on untouched memory.
struct SparseState {
  std::vector<UntouchedMemory> memory;
  ckptio::StateDict dict;
  std::uint64_t rank_bytes = 0;

  SparseState(const Rank& job, std::uint64_t bytes, int tensors) {
    const std::int64_t rows = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(bytes / static_cast<std::uint64_t>(tensors) / (kColumns * sizeof(float))));
    const std::int64_t begin = rows * job.rank / job.size, end = rows * (job.rank + 1) / job.size;
    for (int t = 0; t < tensors; ++t) {
      memory.emplace_back(static_cast<std::size_t>((end - begin) * kColumns) * sizeof(float));
      rank_bytes += memory.back().bytes();
      dict.add("layer" + std::to_string(t) + ".weight",
               ckptio::TensorShard::block(static_cast<void*>(memory.back().data()), ckptio::DType::F32,
                                          {rows, kColumns}, {begin, 0}, {end - begin, kColumns}));
    }
  }
  // The state as the model group of a snapshot of step 1.
  ckptio::Snapshot snapshot() const {
    ckptio::Snapshot result;
    result.model = dict;
    result.running.global_step = 1;
    return result;
  }
  // Makes every page resident (for a load target, whose pages are the state).
  void touch(unsigned char value) {
    for (UntouchedMemory& m : memory) std::memset(m.data(), value, m.bytes());
  }
  // Whether every byte is zero (what a saved sparse state reads back as).
  bool all_zero() const {
    for (const UntouchedMemory& m : memory) {
      const char* p = m.data();
      if (m.bytes() > 0 && (p[0] != 0 || std::memcmp(p, p + 1, m.bytes() - 1) != 0)) return false;
    }
    return true;
  }
};

ckptio::CheckpointOptions keeping(int checkpoints) {
  ckptio::CheckpointOptions options;
  options.keep_last = checkpoints;
  return options;
}

std::uint64_t max_over_ranks(MPI_Comm comm, std::uint64_t value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_UINT64_T, MPI_MAX, comm);
  return value;
}
std::int64_t max_over_ranks(MPI_Comm comm, std::int64_t value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, comm);
  return value;
}

// Collective. Removes `path` (rank 0) once every rank is done with it.
void remove_shared(MPI_Comm comm, const Rank& job, const fs::path& path) {
  MPI_Barrier(comm);
  if (job.rank == 0) fs::remove_all(path);
  MPI_Barrier(comm);
}

}  // namespace

SaveLoadMemory measure_save_load_memory(MPI_Comm comm, const fs::path& dir, std::uint64_t state_bytes) {
  const Rank job(comm);
  const fs::path root = dir / "memory-save-load";
  SaveLoadMemory result;
  {
    // Before ckptio runs: the load's figure counts from here, so that memory the save
    // left resident (heap kept by the allocator) is not hidden in the load's baseline.
    const std::uint64_t resident_before = resident_bytes();
    ckptio::CheckpointIO io(comm, root, keeping(1));
    fs::path path;
    {
      SparseState state(job, state_bytes, 8);
      const ckptio::Snapshot snapshot = state.snapshot();
      MPI_Barrier(comm);
      const PeakRss peak;
      path = io.save(snapshot);
      result.save_extra_bytes = peak.extra_bytes();
    }
    SparseState targets(job, state_bytes, 8);
    targets.touch(0xA5);
    ckptio::Snapshot snapshot;
    snapshot.model = targets.dict;
    MPI_Barrier(comm);
    const PeakRss peak;
    io.load(path, snapshot);
    const std::uint64_t since_start = peak.peak_bytes() > resident_before + targets.rank_bytes
                                          ? peak.peak_bytes() - resident_before - targets.rank_bytes
                                          : 0;
    result.load_extra_bytes = std::max(peak.extra_bytes(), since_start);
    int wrong = targets.all_zero() ? 0 : 1;
    MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_INT, MPI_MAX, comm);
    if (wrong) throw std::runtime_error("the load of the sparse state did not restore zeros");
  }
  remove_shared(comm, job, root);
  result.save_extra_bytes = max_over_ranks(comm, result.save_extra_bytes);
  result.load_extra_bytes = max_over_ranks(comm, result.load_extra_bytes);
  return result;
}

SaveAsyncMemory measure_save_async_memory(MPI_Comm comm, const fs::path& dir, std::uint64_t state_bytes) {
  const Rank job(comm);
  const fs::path root = dir / "memory-save-async";
  SaveAsyncMemory result;
  {
    ckptio::CheckpointIO io(comm, root, keeping(1));
    SparseState state(job, state_bytes, 8);
    const ckptio::Snapshot snapshot = state.snapshot();
    MPI_Barrier(comm);
    const PeakRss peak;
    io.save_async(snapshot);
    io.wait();
    result.extra_bytes = peak.extra_bytes();
    result.staging_bytes = io.staging_bytes();
  }
  remove_shared(comm, job, root);
  result.extra_over_staging_bytes = max_over_ranks(
      comm, static_cast<std::int64_t>(result.extra_bytes) - static_cast<std::int64_t>(result.staging_bytes));
  result.extra_bytes = max_over_ranks(comm, result.extra_bytes);
  result.staging_bytes = max_over_ranks(comm, result.staging_bytes);
  return result;
}

ExportMemory measure_export_memory(MPI_Comm comm, const fs::path& dir, std::uint64_t group_bytes) {
  const Rank job(comm);
  const fs::path root = dir / "memory-export";
  const fs::path out = dir / "memory-export.safetensors";
  ExportMemory result;
  {
    ckptio::CheckpointIO io(comm, root, keeping(1));
    fs::path path;
    {
      SparseState state(job, group_bytes, 16);
      const ckptio::Snapshot snapshot = state.snapshot();
      path = io.save(snapshot);
    }
    MPI_Barrier(comm);
    const PeakRss peak;
    result.tensor_bytes = ckptio::export_safetensors(comm, path, "model", out).tensor_bytes;
    result.extra_bytes = peak.extra_bytes();
  }
  remove_shared(comm, job, out);
  remove_shared(comm, job, root);
  result.extra_bytes = max_over_ranks(comm, result.extra_bytes);
  return result;
}

SaveAsyncDrift measure_save_async_drift(MPI_Comm comm, const fs::path& dir, int cycles, bool fix_mmap_threshold) {
  const Rank job(comm);
  if (fix_mmap_threshold) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  const fs::path root = dir / "memory-drift";
  SaveAsyncDrift result;
  result.cycles = cycles;
  result.warmup_cycles = std::max(1, cycles / 10);
  {
    ckptio::CheckpointIO io(comm, root, keeping(2));
    // 4 tensors of 1 MiB per rank with real contents, changed before every save.
    const std::int64_t rows_per_rank = 256;
    std::vector<std::vector<float>> data(4, std::vector<float>(static_cast<std::size_t>(rows_per_rank * kColumns)));
    ckptio::Snapshot snapshot;
    snapshot.model.emplace();
    for (std::size_t t = 0; t < data.size(); ++t)
      snapshot.model->add("w" + std::to_string(t),
                          ckptio::TensorShard::block(static_cast<void*>(data[t].data()), ckptio::DType::F32,
                                                     {rows_per_rank * job.size, kColumns},
                                                     {rows_per_rank * job.rank, 0}, {rows_per_rank, kColumns}));
    std::uint64_t after_warmup = 0;
    for (int cycle = 1; cycle <= cycles; ++cycle) {
      for (std::vector<float>& tensor : data) std::fill(tensor.begin(), tensor.end(), static_cast<float>(cycle));
      snapshot.running.global_step = cycle;
      snapshot.rank_blob.assign(100, static_cast<std::uint8_t>(cycle));
      io.save_async(snapshot);
      io.wait();
      if (cycle == result.warmup_cycles) after_warmup = resident_bytes();
    }
    result.drift_bytes = static_cast<std::int64_t>(resident_bytes()) - static_cast<std::int64_t>(after_warmup);
  }
  remove_shared(comm, job, root);
  result.drift_bytes = max_over_ranks(comm, result.drift_bytes);
  return result;
}

}  // namespace ckptio_bench
