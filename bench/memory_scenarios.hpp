// How much host memory ckptio needs beyond the training state itself: the scenarios that
// both the benchmark (ckptio_bench_memory, bench/run --memory) and the memory tests
// (MemoryBounds.*) run. The states are "sparse": anonymous memory never written, so that
// reading it maps the kernel's shared zero page and a state of several GiB costs no
// resident memory while saving, yet every byte of it is written to the file. Resident
// memory is the kernel's peak (VmHWM, see peak_rss.hpp) over the call, per rank; every
// figure is the largest over the ranks.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <filesystem>

namespace ckptio_bench {

struct SaveLoadMemory {
  std::uint64_t save_extra_bytes = 0;  // peak over the resident memory before save()
  // peak during load() over the resident memory before the save plus the target shards (so
  // that it includes what the save left resident), or over that before load() if larger
  std::uint64_t load_extra_bytes = 0;
};

// Collective over comm. A synchronous save of `state_bytes` of F32 tensors (8 tensors, row
// blocks over the ranks) into a root under `dir`, then a load of it into resident shards
// (the load's result checked). Removes what it wrote.
SaveLoadMemory measure_save_load_memory(MPI_Comm comm, const std::filesystem::path& dir, std::uint64_t state_bytes);

struct SaveAsyncMemory {
  std::uint64_t extra_bytes = 0;    // peak over the resident memory before save_async(), to the end of wait()
  std::uint64_t staging_bytes = 0;  // what CheckpointIO::staging_bytes() reports after it (this rank's)
  // The largest, over the ranks, of extra_bytes - staging_bytes (negative: below the staging).
  std::int64_t extra_over_staging_bytes = 0;
};

// Collective over comm. One save_async (and its wait) of `state_bytes` as above.
SaveAsyncMemory measure_save_async_memory(MPI_Comm comm, const std::filesystem::path& dir, std::uint64_t state_bytes);

struct ExportMemory {
  std::uint64_t extra_bytes = 0;   // peak over the resident memory before export_safetensors()
  std::uint64_t tensor_bytes = 0;  // what the export wrote
};

// Collective over comm. Saves a "model" group of `group_bytes` (16 tensors, row blocks),
// then exports it to safetensors with every rank. Removes what it wrote.
ExportMemory measure_export_memory(MPI_Comm comm, const std::filesystem::path& dir, std::uint64_t group_bytes);

struct SaveAsyncDrift {
  int cycles = 0;
  int warmup_cycles = 0;
  // Resident memory after the last cycle minus after the warm-up cycles (the largest over the ranks).
  std::int64_t drift_bytes = 0;
};

// Collective over comm. `cycles` save_async + wait of a small state with real contents
// (4 MiB per rank) into one root with keep_last = 2; the first tenth warms up. With glibc's
// default, dynamic mmap threshold, RSS steps up once by about 1 MiB at some cycle (measured
// between the 20th and the 120th), when the allocator, after freeing a large mmapped block,
// starts serving blocks of that size from its heap and keeps those pages; it stays flat
// after. `fix_mmap_threshold` fixes the threshold at glibc's initial 128 KiB first
// (mallopt(M_MMAP_THRESHOLD), for the rest of the process), so that the drift measures
// what ckptio keeps, not that one-time move of the allocator.
SaveAsyncDrift measure_save_async_drift(MPI_Comm comm, const std::filesystem::path& dir, int cycles,
                                        bool fix_mmap_threshold);

}  // namespace ckptio_bench
