// Many save/load cycles with keep_last = 2 keep the open file descriptors and the resident
// memory flat. Runs only when CTest sets CKPTIO_ENDURANCE_CYCLES (skipped otherwise, so that
// the ordinary MPI test runs stay short).
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

TEST(Endurance, SaveLoadCyclesKeepFdsAndMemoryFlat) {
  const char* env = std::getenv("CKPTIO_ENDURANCE_CYCLES");
  if (!env) GTEST_SKIP() << "run by CTest with CKPTIO_ENDURANCE_CYCLES";
  const int cycles = std::atoi(env);
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {128, 64}, Layout::Dim0Blocks},
                   {"optimizer", "m", DType::F32, {128 * 64}, Layout::Flat}},
                  world_rank(), world_size());
  TestState loaded({{"model", "w", DType::F32, {128, 64}, Layout::Flat},
                    {"optimizer", "m", DType::F32, {128 * 64}, Layout::Dim0Blocks}},
                   world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.keep_last = 2});
  const int warmup = cycles / 10;
  int fds_after_warmup = 0;
  long rss_after_warmup = 0;
  for (int i = 1; i <= cycles; ++i) {
    state.snapshot().running.global_step = i;
    state.snapshot().rank_blob.assign(100, static_cast<std::uint8_t>(i));
    io.save(state.snapshot());
    loaded.poison();
    const auto r = io.load_latest(loaded.snapshot());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->running.global_step, i);
    ASSERT_EQ(loaded.check(), "");
    if (i == warmup) {
      fds_after_warmup = open_fds();
      rss_after_warmup = rss_kib();
    }
  }
  const int fds = open_fds();
  const long rss = rss_kib();
  if (world_rank() == 0)
    std::printf("[ endurance ] %d cycles: open fds %d -> %d, RSS %ld -> %ld KiB (after %d warm-up cycles)\n", cycles,
                fds_after_warmup, fds, rss_after_warmup, rss, warmup);
  EXPECT_EQ(fds, fds_after_warmup);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in quarantine (up to 256 MiB): RSS says nothing here.
  (void)rss;
#else
  EXPECT_LT(rss - rss_after_warmup, 4 * 1024) << "resident memory grew by more than 4 MiB";
#endif
  // keep_last = 2: exactly two checkpoints remain.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().extension() == ".h5") ++files;
  EXPECT_EQ(files, 2);
}

}  // namespace
}  // namespace ckptio::test
