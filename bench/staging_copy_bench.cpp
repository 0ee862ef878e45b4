// Micro-benchmarks of save_async's staging copy, which the caller waits for: a piece is
// copied into the staging pool and its XXH3 checksums are taken on the way. Each figure is
// in bytes per second next to a plain memcpy of the same bytes into memory already touched
// (the goal: the staging copy at most 1.1 × as long; docs/PERFORMANCE.md). 512 MiB buffers,
// far larger than the caches, as a rank's share of a checkpoint is.
//
//   build/bench/ckptio_bench_staging_copy --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/copy_checksum.hpp"
#include "core/host_memory.hpp"
#include "core/piece_checksum.hpp"

namespace {

constexpr std::size_t kBytes = std::size_t{512} << 20;

struct FreeDeleter {
  void operator()(unsigned char* p) const noexcept { std::free(p); }
};
using Buffer = std::unique_ptr<unsigned char, FreeDeleter>;

// Page-aligned (as the staging pool is) and touched, so that no copy pays for page faults.
Buffer touched_buffer(unsigned char fill) {
  Buffer buffer(static_cast<unsigned char*>(std::aligned_alloc(4096, kBytes)));
  if (!buffer) throw std::bad_alloc();
  std::memset(buffer.get(), fill, kBytes);
  return buffer;
}

struct Buffers {
  Buffer source = touched_buffer(1);
  Buffer destination = touched_buffer(2);
};

Buffers& buffers() {
  static Buffers instance;
  return instance;
}

void finish(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(kBytes));
}

void BM_Memcpy(benchmark::State& state) {
  Buffers& b = buffers();
  for (auto _ : state) {
    std::memcpy(b.destination.get(), b.source.get(), kBytes);
    benchmark::ClobberMemory();
  }
  finish(state);
}

// The copy alone, one checksum chunk at a time (non-temporal stores).
void BM_CopyStreaming(benchmark::State& state) {
  Buffers& b = buffers();
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < kBytes; offset += ckptio::detail::kChecksumChunkBytes)
      ckptio::detail::copy_streaming(b.destination.get() + offset, b.source.get() + offset,
                                     ckptio::detail::kChecksumChunkBytes);
    benchmark::ClobberMemory();
  }
  finish(state);
}

// Copy and checksum, one chunk at a time, with the given code: kPortable copies each chunk
// and then hashes it from the cache (the staging copy before the one-pass code); kAvx2 and
// kAvx512 copy and hash in one pass.
void BM_CopyAndChecksum(benchmark::State& state) {
  const auto code = static_cast<ckptio::detail::CopyChecksumCode>(state.range(0));
  if (!ckptio::detail::copy_checksum_code_runs(code)) {
    state.SkipWithError("this CPU does not run this code");
    return;
  }
  Buffers& b = buffers();
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (std::size_t offset = 0; offset < kBytes; offset += ckptio::detail::kChecksumChunkBytes)
      sum += ckptio::detail::copy_and_xxh3_64(code, b.destination.get() + offset, b.source.get() + offset,
                                              ckptio::detail::kChecksumChunkBytes);
    benchmark::DoNotOptimize(sum);
  }
  finish(state);
}

// What stage_written_pieces calls for a host piece: the code chosen for this CPU.
void BM_CopyAndChecksumPiece(benchmark::State& state) {
  Buffers& b = buffers();
  for (auto _ : state) {
    auto sums = ckptio::detail::copy_and_checksum_piece(b.destination.get(), b.source.get(), kBytes,
                                                        ckptio::detail::kChecksumChunkBytes);
    benchmark::DoNotOptimize(sums.whole);
  }
  finish(state);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CopyStreaming)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CopyAndChecksum)
    ->ArgName("code")  // 0 copy then hash, 1 one pass AVX2, 2 one pass AVX-512
    ->Arg(static_cast<int>(ckptio::detail::CopyChecksumCode::kPortable))
    ->Arg(static_cast<int>(ckptio::detail::CopyChecksumCode::kAvx2))
    ->Arg(static_cast<int>(ckptio::detail::CopyChecksumCode::kAvx512))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CopyAndChecksumPiece)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
