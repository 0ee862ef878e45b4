// Resharding: a checkpoint saved by P ranks with one split loads on Q ranks with any
// other split, bit-exact. Within one mpiexec of N ranks, sub-communicators of the first P
// (save) and first Q (load) ranks give every P, Q in 1..N: 1 -> 4, 4 -> 3, 3 -> 2, ...
#include <gtest/gtest.h>

#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "h5/index_codec.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

const Layout kLayouts[] = {Layout::Replicated, Layout::Dim0Blocks, Layout::Dim1Blocks, Layout::LastDimBlocks,
                           Layout::SkewedDim0, Layout::Flat,       Layout::SkewedFlat};

// One tensor per (save layout, load layout) pair, with shapes that do not divide evenly.
std::vector<std::pair<TensorSpec, TensorSpec>> layout_pairs() {
  std::vector<std::pair<TensorSpec, TensorSpec>> out;
  const Shape shapes[] = {{7, 5}, {3, 4, 5}, {11}};
  const DType dtypes[] = {DType::F32, DType::BF16, DType::I64};
  int i = 0;
  for (Layout save : kLayouts)
    for (Layout load : kLayouts) {
      const Shape& shape = shapes[i % 3];
      const DType dtype = dtypes[i % 3];
      const std::string group = i % 3 == 0 ? "model" : (i % 3 == 1 ? "optimizer" : "ema");
      const std::string name =
          std::string("t") + std::to_string(i) + "." + layout_name(save) + ".to." + layout_name(load);
      out.push_back({{group, name, dtype, shape, save}, {group, name, dtype, shape, load}});
      ++i;
    }
  return out;
}

MPI_Comm first_ranks(int count) {
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < count ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

TEST(Reshard, EverySaveAndLoadWorldSizeAndLayout) {
  const int n = world_size(), rank = world_rank();
  std::vector<TensorSpec> save_specs, load_specs;
  for (auto& [s, l] : layout_pairs()) {
    save_specs.push_back(s);
    load_specs.push_back(l);
  }
  for (int p = 1; p <= n; ++p)
    for (int q = 1; q <= n; ++q) {
      SCOPED_TRACE("save on " + std::to_string(p) + " ranks, load on " + std::to_string(q));
      SharedTempDir dir;
      MPI_Comm save_comm = first_ranks(p);
      if (save_comm != MPI_COMM_NULL) {
        TestState state(save_specs, rank, p);
        state.fill();
        state.snapshot().rank_blob.assign(static_cast<std::size_t>(rank + 1), static_cast<std::uint8_t>(100 + rank));
        CheckpointIO io(save_comm, dir.path());
        io.save(state.snapshot());
        MPI_Comm_free(&save_comm);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      MPI_Comm load_comm = first_ranks(q);
      if (load_comm != MPI_COMM_NULL) {
        TestState state(load_specs, rank, q);
        state.poison();
        CheckpointIO io(load_comm, dir.path());
        const auto result = io.load_latest(state.snapshot());
        ASSERT_TRUE(result);
        EXPECT_EQ(state.check(), "");
        EXPECT_EQ(result->saved_world_size, p);
        if (p == q) {
          EXPECT_EQ(result->rank_blob, std::vector<std::uint8_t>(rank + 1, static_cast<std::uint8_t>(100 + rank)));
          EXPECT_TRUE(result->saved_rank_blobs.empty());
        } else {
          EXPECT_TRUE(result->rank_blob.empty());
          ASSERT_EQ(result->saved_rank_blobs.size(), static_cast<std::size_t>(p));
          for (int r = 0; r < p; ++r)
            EXPECT_EQ(result->saved_rank_blobs[r],
                      std::vector<std::uint8_t>(r + 1, static_cast<std::uint8_t>(100 + r)));
        }
        MPI_Comm_free(&load_comm);
      }
      MPI_Barrier(MPI_COMM_WORLD);
    }
}

// Replicated pieces are written exactly once, and writers are balanced by bytes: with 4·k
// equal replicated tensors on 4 ranks every rank writes k of them.
TEST(Reshard, ReplicatedPiecesAreWrittenOnceByBalancedWriters) {
  const int n = world_size(), rank = world_rank();
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 2 * n; ++i)
    specs.push_back({"model", "rep" + std::to_string(i), DType::F32, {64}, Layout::Replicated});
  specs.push_back({"model", "sharded", DType::F32, {8, 3}, Layout::Dim0Blocks});
  TestState state(specs, rank, n);
  state.fill();
  SharedTempDir dir;
  std::filesystem::path path;
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    path = io.save(state.snapshot());
  }
  if (rank == 0) {
    detail::h5::ContainerReader reader(MPI_COMM_NULL, path.string());
    const auto index = detail::h5::decode_index(reader.read_bytes(detail::h5::kIndexDataset, 1 << 24), path.string());
    reader.close();
    std::vector<int> writes(n, 0);
    for (const auto& t : index.tensors) {
      if (t.name == "sharded") {
        ASSERT_EQ(t.pieces.size(), static_cast<std::size_t>(std::min(n, 8)));
        for (std::size_t i = 0; i < t.pieces.size(); ++i) EXPECT_EQ(t.pieces[i].writer, static_cast<int>(i));
        continue;
      }
      ASSERT_EQ(t.pieces.size(), 1u) << t.name;  // one piece: written once
      ++writes[t.pieces[0].writer];
    }
    EXPECT_EQ(writes, std::vector<int>(n, 2));
  }
}

}  // namespace
}  // namespace ckptio::test
