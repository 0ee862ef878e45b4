// MPI-IO hints and dataset alignment: accepted, effective in the file, and harmless to the
// round trip; a malformed CKPTIO_MPIIO_HINTS is the same clear error on every rank.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdlib>

#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

haddr_t dataset_offset(const std::filesystem::path& file, const char* dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return offset;
}

TEST(FileTuning, AlignedDatasetsWithHintsRoundTrip) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  SharedTempDir dir;
  const std::vector<TensorSpec> specs = {{"model", "a", DType::F32, {100, 300}, Layout::Dim0Blocks},
                                         {"model", "small", DType::F32, {10}, Layout::Replicated},
                                         {"ema", "a", DType::F16, {300, 200}, Layout::Flat}};
  TestState state(specs, world_rank(), world_size());
  state.fill();
  CheckpointOptions options;
  options.alignment = 64 * 1024;
  options.mpi_io_hints = {{"romio_cb_write", "disable"}, {"striping_unit", "1048576"}};
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), options);
  const auto path = io.save(state.snapshot());
  if (world_rank() == 0) {
    EXPECT_EQ(dataset_offset(path, "/model/a") % options.alignment, 0u);
    EXPECT_EQ(dataset_offset(path, "/ema/a") % options.alignment, 0u);
  }
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(FileTuning, MalformedHintsVariableIsAnAgreedUsageError) {
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {4}, Layout::Replicated}}, world_rank(), world_size());
  state.fill();
  // Read once, by the constructor: a malformed value is refused there, on every rank.
  {
    ScopedEnv hints("CKPTIO_MPIIO_HINTS", "cb_nodes=2,striping");
    const auto msg = expect_agreed_error<UsageError>([&] { CheckpointIO io(MPI_COMM_WORLD, dir.path()); });
    EXPECT_EQ(msg,
              "[ckptio] [rank 0] read environment: CKPTIO_MPIIO_HINTS: 'striping' is not key=value "
              "(expected key=value,key=value)");
  }
  ScopedEnv hints("CKPTIO_MPIIO_HINTS", "cb_nodes=2");
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  hints.set(std::nullopt);
  EXPECT_NO_THROW(io.save(state.snapshot()));
}

}  // namespace
}  // namespace ckptio::test
