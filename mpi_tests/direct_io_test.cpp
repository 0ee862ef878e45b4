// CheckpointOptions::direct_io: the page-aligned middle of large pieces is written with
// O_DIRECT, the unaligned ends and small tensors through the page cache. Checked by a
// bit-exact round trip (also through plain HDF5) and by what the page cache holds afterwards:
// a buffered save leaves the file's data resident, a direct one does not.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>

#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

// Odd sizes, so that pieces start and end off page boundaries; one small tensor stays buffered.
std::vector<TensorSpec> specs() {
  return {{"model", "big.w", DType::F32, {2003, 1031}, Layout::Dim0Blocks},
          {"model", "big.b", DType::BF16, {3, 700001}, Layout::Flat},
          {"optimizer", "small", DType::F64, {5, 7}, Layout::Replicated},
          {"ema", "big.w", DType::F32, {2003, 1031}, Layout::Dim1Blocks}};
}

// Fraction of the pages of /model/big.w's data that are in the page cache.
double resident_fraction(const std::filesystem::path& file) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "/model/big.w", H5P_DEFAULT);
  const haddr_t address = H5Dget_offset(d);
  const hsize_t bytes = H5Dget_storage_size(d);
  H5Dclose(d);
  H5Fclose(f);
  const int fd = ::open(file.c_str(), O_RDONLY);
  struct stat st {};
  ::fstat(fd, &st);
  void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t first = (static_cast<std::size_t>(address) + page - 1) / page;
  const std::size_t last = static_cast<std::size_t>(address + bytes) / page;
  std::vector<unsigned char> in((static_cast<std::size_t>(st.st_size) + page - 1) / page);
  ::mincore(map, static_cast<std::size_t>(st.st_size), in.data());
  std::size_t resident = 0;
  for (std::size_t p = first; p < last; ++p) resident += in[p] & 1;
  ::munmap(map, static_cast<std::size_t>(st.st_size));
  ::close(fd);
  return last > first ? static_cast<double>(resident) / static_cast<double>(last - first) : 0.0;
}

bool on_tmpfs(const std::filesystem::path& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

TEST(DirectIo, RoundTripIsBitExactAndBypassesThePageCache) {
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  TestState state(specs(), rank, ranks);
  state.fill();
  for (bool direct : {false, true}) {
    CheckpointOptions options;
    options.direct_io = direct;
    options.keep_last = 1;
    CheckpointIO io(MPI_COMM_WORLD, dir / (direct ? "direct" : "buffered"), options);
    const auto path = io.save(state.snapshot());
    if (rank == 0 && !on_tmpfs(dir.path())) {  // tmpfs refuses O_DIRECT and is all page cache
      const double resident = resident_fraction(path);
      if (direct)
        EXPECT_LT(resident, 0.05) << "direct I/O left the data in the page cache";
      else
        EXPECT_GT(resident, 0.95) << "a buffered save should leave its data in the page cache";
    }
    state.poison();
    io.load(path, state.snapshot());
    EXPECT_EQ(state.check(), "") << "direct_io=" << direct;
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST(DirectIo, EnvironmentVariableMustBeZeroOrOne) {
  SharedTempDir dir;
  TestState state(specs(), world_rank(), world_size());
  state.fill();
  // Read once, by the constructor: a malformed value is refused there, on every rank.
  {
    ScopedEnv direct_io("CKPTIO_DIRECT_IO", "yes");
    const auto msg = expect_agreed_error<UsageError>([&] { CheckpointIO io(MPI_COMM_WORLD, dir.path()); });
    EXPECT_EQ(msg, "[ckptio] [rank 0] read environment: CKPTIO_DIRECT_IO: 'yes' is not 0 or 1");
  }
  // With "1" the save works and loads back.
  ScopedEnv direct_io("CKPTIO_DIRECT_IO", "1");
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  direct_io.set(std::nullopt);
  const auto path = io.save(state.snapshot());
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

}  // namespace
}  // namespace ckptio::test
