// Many small tensors: their pieces are written straight to the file and merged with their
// neighbours into single writes, and read back through windows of the file. Every dtype,
// scalars, empty tensors, blocks that span whole rows (one byte range each) and blocks that
// do not (written through HDF5 hyperslabs) must come back bit-exact, with and without
// verification, resharded over a different split, and read the same through plain HDF5.
#include <gtest/gtest.h>
#include <hdf5.h>

#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

std::vector<TensorSpec> small_specs(bool resharded) {
  std::vector<TensorSpec> specs;
  const Layout layouts[] = {Layout::Dim0Blocks, Layout::Dim1Blocks,    Layout::Replicated, Layout::Flat,
                            Layout::SkewedDim0, Layout::LastDimBlocks, Layout::SkewedFlat};
  const Shape shapes[] = {{4, 16}, {}, {3}, {0, 5}, {5, 3, 2}, {1}, {7, 1}, {2, 0, 3}};
  int i = 0;
  for (int round = 0; round < 4; ++round)
    for (DType d : kAllDTypes)
      for (const Shape& shape : shapes) {
        const Layout l = layouts[(i + (resharded ? 3 : 0)) % std::size(layouts)];
        specs.push_back({i % 5 == 4 ? "optimizer" : "model", "t" + std::to_string(i) + "." + std::string(dtype_name(d)),
                         d, shape, l});
        ++i;
      }
  return specs;
}

// Every dataset's bytes, read by HDF5 itself (serially), against the pattern.
std::string check_with_hdf5(const std::filesystem::path& file, const std::vector<TensorSpec>& specs) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return "cannot open " + file.string();
  std::string problem;
  for (const auto& s : specs) {
    const std::string where = "/" + s.group + "/" + s.name;
    const hid_t d = H5Dopen2(f, where.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(d);
    const std::size_t esz = dtype_size(s.dtype);
    std::int64_t n = 1;
    for (auto e : s.shape) n *= e;
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n) * esz + 1);
    if (d < 0 || type < 0 || (n > 0 && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0))
      problem = "cannot read " + where;
    for (std::int64_t e = 0; e < n && problem.empty(); ++e)
      for (std::size_t b = 0; b < esz; ++b)
        if (bytes[static_cast<std::size_t>(e) * esz + b] !=
            pattern_byte(seed_for(s.group + "/" + s.name), s.dtype, e, b))
          problem = where + ": element " + std::to_string(e) + " differs";
    H5Tclose(type);
    H5Dclose(d);
    if (!problem.empty()) break;
  }
  H5Fclose(f);
  return problem;
}

TEST(SmallIo, ManySmallTensorsBitExact) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  SharedTempDir dir;
  const int rank = world_rank(), ranks = world_size();
  const auto specs = small_specs(false);
  TestState state(specs, rank, ranks);
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(state.snapshot());
  for (bool verify : {true, false}) {
    state.poison();
    LoadOptions options;
    options.verify = verify;
    io.load(path, state.snapshot(), options);
    EXPECT_EQ(state.check(), "") << "verify=" << verify;
  }
  // Loaded over another split of the same tensors.
  TestState other(small_specs(true), rank, ranks);
  other.poison();
  io.load(path, other.snapshot());
  EXPECT_EQ(other.check(), "");
  if (rank == 0) EXPECT_EQ(check_with_hdf5(path, specs), "");
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace ckptio::test
