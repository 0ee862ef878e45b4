// CKPTIO_DIRECT_IO and CKPTIO_MPIIO_HINTS (io/options_env.hpp): read once, on rank 0, whose
// values every rank uses; they fill only what the code left at its default.
#include <gtest/gtest.h>

#include <cstdlib>

#include "io/options_env.hpp"
#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

TEST(OptionsEnvironment, RankZerosValuesFillTheDefaultsOnEveryRank) {
  const int rank = world_rank();
  // Rank 0 asks for buffered writes and one hint; the others' values (even malformed ones)
  // are ignored.
  ScopedEnv direct("CKPTIO_DIRECT_IO", rank == 0 ? "0" : (rank % 2 ? "1" : "yes"));
  ScopedEnv hints("CKPTIO_MPIIO_HINTS", rank == 0 ? "cb_nodes=2,romio_cb_write=disable" : (rank % 2 ? "x" : nullptr));
  detail::Comm comm(MPI_COMM_WORLD);
  const CheckpointOptions filled = detail::with_environment(comm, {});
  ASSERT_TRUE(filled.direct_io.has_value());
  EXPECT_FALSE(*filled.direct_io);
  EXPECT_EQ(filled.mpi_io_hints,
            (std::map<std::string, std::string>{{"cb_nodes", "2"}, {"romio_cb_write", "disable"}}));
  EXPECT_FALSE(detail::file_tuning(filled).direct_io);
}

TEST(OptionsEnvironment, ValuesSetInCodeWin) {
  ScopedEnv direct("CKPTIO_DIRECT_IO", "0");
  ScopedEnv hints("CKPTIO_MPIIO_HINTS", "cb_nodes=2,romio_cb_write=disable");
  detail::Comm comm(MPI_COMM_WORLD);
  CheckpointOptions options;
  options.direct_io = true;
  options.mpi_io_hints = {{"cb_nodes", "4"}};
  const CheckpointOptions filled = detail::with_environment(comm, options);
  EXPECT_EQ(filled.direct_io, std::optional<bool>(true));
  EXPECT_EQ(filled.mpi_io_hints,
            (std::map<std::string, std::string>{{"cb_nodes", "4"}, {"romio_cb_write", "disable"}}));
  // The 4 KiB alignment default under direct I/O stays.
  const auto tuning = detail::file_tuning(filled);
  EXPECT_TRUE(tuning.direct_io);
  EXPECT_EQ(tuning.alignment, 4096u);
  EXPECT_EQ(tuning.alignment_threshold, 1u << 20);
}

TEST(OptionsEnvironment, UnsetEverywhereKeepsTheDefaults) {
  ScopedEnv direct("CKPTIO_DIRECT_IO", nullptr);
  ScopedEnv hints("CKPTIO_MPIIO_HINTS", nullptr);
  detail::Comm comm(MPI_COMM_WORLD);
  const CheckpointOptions filled = detail::with_environment(comm, {});
  EXPECT_FALSE(filled.direct_io.has_value());
  EXPECT_TRUE(filled.mpi_io_hints.empty());
  EXPECT_TRUE(detail::file_tuning(filled).direct_io);  // on by default
}

// Read by the constructor only: changing the environment afterwards changes nothing, and
// a malformed value on rank 0 is one agreed error.
TEST(OptionsEnvironment, ReadOnceByTheConstructor) {
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {4}, Layout::Replicated}}, world_rank(), world_size());
  state.fill();
  std::optional<CheckpointIO> io;
  {
    ScopedEnv hints("CKPTIO_MPIIO_HINTS", world_rank() == 0 ? "cb_nodes=1" : "malformed");
    io.emplace(MPI_COMM_WORLD, dir.path());
  }
  ScopedEnv hints("CKPTIO_MPIIO_HINTS", "malformed");
  EXPECT_NO_THROW(io->save(state.snapshot()));
  io.reset();
  MPI_Barrier(MPI_COMM_WORLD);
  const auto msg = expect_agreed_error<UsageError>([&] { CheckpointIO bad(MPI_COMM_WORLD, dir.path()); });
  EXPECT_EQ(msg,
            "[ckptio] [rank 0] read environment: CKPTIO_MPIIO_HINTS: 'malformed' is not key=value "
            "(expected key=value,key=value)");
}

}  // namespace
}  // namespace ckptio::test
