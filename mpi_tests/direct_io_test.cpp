// CheckpointOptions::direct_io: the page-aligned middle of large pieces is written and read
// with O_DIRECT, the unaligned ends and small tensors through the page cache. Checked by
// bit-exact round trips (page-aligned and unaligned memory, ranges that start and end off
// block boundaries, resharded loads, tmpfs) and by what the page cache holds afterwards: a
// buffered save or load leaves the file's data resident, a direct one does not.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "h5/container_reader.hpp"

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

// Fraction of the pages of a dataset's data that are in the page cache.
double resident_fraction(const std::filesystem::path& file, const char* dataset = "/model/big.w") {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
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

// Drops the file's pages from the page cache, so that what a read leaves there shows.
void evict(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << file;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Loads `path` into `loaded` with `io` from a cold page cache and checks every byte; on rank
// 0, outside tmpfs (all page cache), also what the load left of `dataset` in the page cache:
// none of it after a direct load, all of it after a buffered one.
void expect_cold_load_bit_exact(CheckpointIO& io, bool direct, const std::filesystem::path& path, TestState& loaded,
                                const char* dataset) {
  loaded.poison();
  if (world_rank() == 0) evict(path);
  MPI_Barrier(MPI_COMM_WORLD);
  io.load(path, loaded.snapshot());
  EXPECT_EQ(loaded.check(), "");
  if (world_rank() == 0 && !on_tmpfs(path)) {
    const double resident = resident_fraction(path, dataset);
    if (direct)
      EXPECT_LT(resident, 0.05) << "a direct load read " << dataset << " through the page cache";
    else
      EXPECT_GT(resident, 0.95) << "a buffered load should leave " << dataset << " in the page cache";
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Whether the kernel reads `file` with O_DIRECT (newer kernels accept it on tmpfs, older
// ones refuse it at open).
bool direct_read_accepted(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return false;
  void* buffer = std::aligned_alloc(4096, 4096);
  const bool ok = ::pread(fd, buffer, 4096, 0) >= 0;
  std::free(buffer);
  ::close(fd);
  return ok;
}

// A fresh folder on tmpfs that every rank sees (empty path where there is none).
class SharedTmpfsDir {
 public:
  SharedTmpfsDir() {
    char name[256] = {};
    if (world_rank() == 0 && on_tmpfs("/dev/shm")) {
      std::string pattern = "/dev/shm/ckptio-direct-io.XXXXXX";
      if (::mkdtemp(pattern.data())) std::strncpy(name, pattern.c_str(), sizeof name - 1);
    }
    MPI_Bcast(name, sizeof name, MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = name;
  }
  ~SharedTmpfsDir() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0 && !path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One byte tensor of 5 MiB + 4099 bytes: not a multiple of any block size.
constexpr std::int64_t kRawBytes = (std::int64_t{5} << 20) + 4099;

// Saves /model/bytes (kRawBytes, the test pattern) under `root`; returns the container.
std::filesystem::path save_byte_tensor(const std::filesystem::path& root) {
  TestState state({{"model", "bytes", DType::U8, {kRawBytes}, Layout::Flat}}, world_rank(), world_size());
  state.fill();
  CheckpointOptions options;
  options.direct_io = true;
  CheckpointIO io(MPI_COMM_WORLD, root, options);
  return io.save(state.snapshot());
}

// Reads ranges of /model/bytes that start and end on and off 4 KiB boundaries, below and
// above the direct-read threshold, into memory at every kind of offset from a page
// boundary, and compares them (and the guard bytes around them) with the pattern.
void expect_exact_ranges(detail::h5::ContainerReader& reader) {
  struct Case {
    std::int64_t begin, bytes;
    std::size_t memory_offset;  // of the destination from a 4 KiB boundary
  };
  const Case cases[] = {
      {0, kRawBytes, 0},                              // aligned start, unaligned end
      {0, kRawBytes, 1},                              // unaligned memory: through the aligned buffer
      {1, kRawBytes - 1, 0},                          // unaligned start
      {4095, kRawBytes - 4098, 4095},                 // the aligned middle lands on aligned memory
      {4097, 3 << 20, 100},                           // unaligned start, other memory offset
      {8192, 1 << 20, 0},                             // all aligned
      {8192, 64 << 10, 0},                            // exactly the direct-read threshold
      {12345, (64 << 10) - 1, 0},                     // under it: buffered
      {kRawBytes - (1 << 20) - 1, (1 << 20) + 1, 7},  // up to the end of the data
  };
  const std::uint64_t seed = seed_for("model/bytes");
  constexpr std::size_t kGuard = 64;
  constexpr std::uint8_t kPoison = 0xA5;
  for (const Case& c : cases) {
    SCOPED_TRACE("bytes " + std::to_string(c.begin) + "+" + std::to_string(c.bytes) + " into memory at page offset " +
                 std::to_string(c.memory_offset));
    const std::size_t size = static_cast<std::size_t>(c.bytes) + c.memory_offset + 2 * 4096 + kGuard;
    char* base = static_cast<char*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096));
    std::memset(base, kPoison, size);
    char* out = base + 4096 + c.memory_offset;
    reader.read_block("model", "bytes", DType::U8, {kRawBytes}, Block{{c.begin}, {c.bytes}}, out);
    std::string problem;
    for (std::int64_t i = 0; i < c.bytes && problem.empty(); ++i)
      if (static_cast<std::uint8_t>(out[i]) != pattern_byte(seed, DType::U8, c.begin + i, 0))
        problem = "byte " + std::to_string(c.begin + i) + " differs";
    for (std::size_t i = 1; i <= kGuard && problem.empty(); ++i)
      if (static_cast<std::uint8_t>(out[-static_cast<std::ptrdiff_t>(i)]) != kPoison ||
          static_cast<std::uint8_t>(out[c.bytes + static_cast<std::int64_t>(i) - 1]) != kPoison)
        problem = "a byte outside the destination was written";
    EXPECT_EQ(problem, "");
    std::free(base);
  }
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

TEST(DirectIo, ReadsOfAnyRangeIntoAnyMemoryAreBitExactAndBypassThePageCache) {
  SharedTempDir dir;
  const auto path = save_byte_tensor(dir.path());
  if (world_rank() == 0) {
    for (bool direct : {true, false}) {
      SCOPED_TRACE(direct ? "direct reads" : "buffered reads");
      detail::h5::ContainerReader reader(MPI_COMM_NULL, path.string());
      if (direct) reader.enable_direct_io();
      expect_exact_ranges(reader);
      if (on_tmpfs(dir.path())) continue;  // all page cache
      EXPECT_EQ(reader.direct_io(), direct);
      // The whole tensor into page-aligned memory, from the device (the small and
      // unaligned reads above went through the page cache, with readahead).
      evict(path);
      void* whole = std::aligned_alloc(4096, (kRawBytes + 4095) / 4096 * 4096);
      reader.read_block("model", "bytes", DType::U8, {kRawBytes}, Block{{0}, {kRawBytes}}, whole);
      std::free(whole);
      const double resident = resident_fraction(path, "/model/bytes");
      if (direct)
        EXPECT_LT(resident, 0.05) << "direct reads left the data in the page cache";
      else
        EXPECT_GT(resident, 0.95) << "buffered reads should leave the data in the page cache";
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(DirectIo, LoadIntoAlignedAndUnalignedMemoryIsBitExact) {
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  TestState saved(specs(), rank, ranks);
  saved.fill();
  CheckpointOptions options;
  options.direct_io = true;
  CheckpointIO io(MPI_COMM_WORLD, dir / "direct", options);
  const auto path = io.save(saved.snapshot());
  options.direct_io = false;
  CheckpointIO buffered(MPI_COMM_WORLD, dir / "buffered", options);
  // Page-aligned memory (read straight into it), three unaligned placements (through the
  // aligned buffer) and wherever the allocator puts it; then a buffered load for contrast.
  const std::optional<std::size_t> placements[] = {0, 16, 4095, 2048, std::nullopt, 0};
  for (std::size_t i = 0; i < std::size(placements); ++i) {
    const bool direct = i + 1 < std::size(placements);
    SCOPED_TRACE(std::string(direct ? "direct" : "buffered") + " load into memory at page offset " +
                 (placements[i] ? std::to_string(*placements[i]) : std::string("(allocator's)")));
    TestState loaded(specs(), rank, ranks, placements[i]);
    expect_cold_load_bit_exact(direct ? io : buffered, direct, path, loaded, "/model/big.w");
  }
}

// Saved on all ranks (4 in the 4-rank run), loaded on one rank fewer (4 -> 3) with row
// blocks, column blocks and flat ranges that cut the stored pieces off block boundaries.
TEST(DirectIo, ReshardedLoadIsBitExact) {
  const int rank = world_rank(), ranks = world_size();
  if (ranks < 2) GTEST_SKIP() << "needs at least 2 ranks";
  const std::vector<TensorSpec> saved_specs = {{"model", "w", DType::F32, {2003, 1031}, Layout::Dim0Blocks},
                                               {"model", "b", DType::BF16, {3, 700001}, Layout::Flat},
                                               {"ema", "w", DType::F32, {1031, 2003}, Layout::Dim0Blocks}};
  const std::vector<TensorSpec> loaded_specs = {{"model", "w", DType::F32, {2003, 1031}, Layout::Dim0Blocks},
                                                {"model", "b", DType::BF16, {3, 700001}, Layout::SkewedFlat},
                                                {"ema", "w", DType::F32, {1031, 2003}, Layout::Dim1Blocks}};
  SharedTempDir dir;
  CheckpointOptions options;
  options.direct_io = true;
  {
    TestState state(saved_specs, rank, ranks);
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), options);
    io.save(state.snapshot());
  }
  MPI_Comm fewer;
  MPI_Comm_split(MPI_COMM_WORLD, rank < ranks - 1 ? 0 : MPI_UNDEFINED, rank, &fewer);
  if (fewer != MPI_COMM_NULL) {
    for (std::optional<std::size_t> placement : {std::optional<std::size_t>(0), std::optional<std::size_t>(16)}) {
      TestState state(loaded_specs, rank, ranks - 1, placement);
      state.poison();
      CheckpointIO io(fewer, dir.path(), options);
      ASSERT_TRUE(io.load_latest(state.snapshot()));
      EXPECT_EQ(state.check(), "") << "memory at page offset " << *placement;
    }
    MPI_Comm_free(&fewer);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Thousands of small tensors of odd sizes, packed (format version 2), replicated so that
// each rank writes a share of them: a rank's share lies together in the packed dataset and
// goes out in whole aligned blocks (the gather buffer carries its unaligned tail into the
// next block, and fills the alignment padding between tensors), and a load reads it in
// aligned windows straight from the device. Every byte round trips, and neither the direct
// save nor the direct load leaves the packed data in the page cache; a buffered load does.
TEST(DirectIo, ManySmallPackedTensorsRoundTripBitExactAndBypassThePageCache) {
  const int rank = world_rank(), ranks = world_size();
  std::vector<TensorSpec> saved_specs, loaded_specs;
  for (int i = 0; i < 3000; ++i) {  // 1,000 to 8,363 bytes each, 14 MB in all
    const Shape shape{1000 + 37 * (i % 200)};
    saved_specs.push_back({"model", "experts." + std::to_string(i), DType::U8, shape, Layout::Replicated});
    loaded_specs.push_back({"model", "experts." + std::to_string(i), DType::U8, shape, Layout::Flat});
  }
  SharedTempDir dir;
  const bool tmpfs = on_tmpfs(dir.path());
  CheckpointOptions options;
  options.direct_io = true;
  CheckpointIO io(MPI_COMM_WORLD, dir / "direct", options);
  std::filesystem::path path;
  {
    TestState state(saved_specs, rank, ranks);
    state.fill();
    path = io.save(state.snapshot());
  }
  if (rank == 0 && !tmpfs)
    EXPECT_LT(resident_fraction(path, "/_ckptio/packed/model"), 0.05)
        << "a direct save left its data in the page cache";
  options.direct_io = false;
  CheckpointIO buffered(MPI_COMM_WORLD, dir / "buffered", options);
  for (const bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct load" : "buffered load");
    TestState loaded(loaded_specs, rank, ranks);
    expect_cold_load_bit_exact(direct ? io : buffered, direct, path, loaded, "/_ckptio/packed/model");
  }
}

// tmpfs: older kernels refuse O_DIRECT there (the reader then reads through the page
// cache), newer ones accept it; either way every byte arrives.
TEST(DirectIo, ReadsOnTmpfsAreBitExact) {
  SharedTmpfsDir dir;
  if (dir.path().empty()) GTEST_SKIP() << "no tmpfs at /dev/shm";
  const auto path = save_byte_tensor(dir.path());
  if (world_rank() == 0) {
    detail::h5::ContainerReader reader(MPI_COMM_NULL, path.string());
    reader.enable_direct_io();
    expect_exact_ranges(reader);
    EXPECT_EQ(reader.direct_io(), direct_read_accepted(path));
  }
  TestState state({{"model", "bytes", DType::U8, {kRawBytes}, Layout::Flat}}, world_rank(), world_size(), 0);
  state.poison();
  CheckpointOptions options;
  options.direct_io = true;
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), options);
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

}  // namespace
}  // namespace ckptio::test
