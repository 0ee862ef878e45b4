// A failure injected on one rank in the middle of a save: every rank throws the same
// error, nobody hangs, the partial file is removed and `latest` still names the previous
// checkpoint. Runs only when CTest sets CKPTIO_FAULT_INJECT=save.write@1#2:throw (the
// second save fails on rank 1); skipped otherwise, and in a build without fault injection
// (CKPTIO_FAULT_INJECTION=OFF).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/fault.hpp"
#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

TEST(FaultInjection, FailureOnOneRankDuringWritesIsAgreedAndHarmless) {
  if (!detail::fault_injection_compiled())
    GTEST_SKIP() << "fault injection is not compiled in (configure with -DCKPTIO_FAULT_INJECTION=ON)";
  const char* spec = std::getenv("CKPTIO_FAULT_INJECT");
  if (!spec || std::string(spec) != "save.write@1#2:throw" || world_size() < 2)
    GTEST_SKIP() << "run by CTest with CKPTIO_FAULT_INJECT=save.write@1#2:throw on 2+ ranks";
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {64, 8}, Layout::Dim0Blocks}}, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 10;
  io.save(state.snapshot());
  state.snapshot().running.global_step = 20;
  const auto msg = expect_agreed_error<IoError>([&] { io.save(state.snapshot()); });
  EXPECT_EQ(msg, "[ckptio] [rank 1] save: write " + (dir / "epoch0-global_step20.h5.partial").string() +
                     ": injected fault at save.write");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step20.h5.partial"));
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step20.h5"));
  std::ifstream latest(dir / "latest");
  std::string line;
  std::getline(latest, line);
  EXPECT_EQ(line, "epoch0-global_step10.h5");
  state.poison();
  const auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 10);
  EXPECT_EQ(state.check(), "");
  // The next save works again.
  state.fill();
  state.snapshot().running.global_step = 30;
  EXPECT_EQ(io.save(state.snapshot()), dir / "epoch0-global_step30.h5");
}

}  // namespace
}  // namespace ckptio::test
