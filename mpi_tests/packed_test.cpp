// Packed small tensors (container format version 2): many small tensors round trip bit-exact
// on any rank count, large ones keep their own datasets, format version 1 containers still
// load and verify, and packed places that the index claims outside the packed dataset are
// refused with one agreed error.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

// `count` tensors of 256 B to 64 KiB in every group and several dtypes and layouts, plus
// one of 2 MiB, which is too large to be packed.
std::vector<TensorSpec> many_small(int count, bool for_load) {
  const char* groups[] = {"model", "optimizer", "ema"};
  const DType dtypes[] = {DType::F32, DType::BF16, DType::I64, DType::U8};
  const Layout save_layouts[] = {Layout::Replicated, Layout::Dim0Blocks, Layout::Flat, Layout::LastDimBlocks};
  const Layout load_layouts[] = {Layout::Flat, Layout::Replicated, Layout::LastDimBlocks, Layout::Dim0Blocks};
  const Layout* layouts = for_load ? load_layouts : save_layouts;
  std::vector<TensorSpec> specs;
  for (int i = 0; i < count; ++i) {
    const DType dtype = dtypes[i % 4];
    const std::int64_t bytes = std::int64_t{256} << (i % 9);  // 256 B .. 64 KiB
    const std::int64_t elements = bytes / static_cast<std::int64_t>(dtype_size(dtype));
    const Shape shape = i % 2 ? Shape{elements / 8, 8} : Shape{elements};
    specs.push_back({groups[i % 3], "experts." + std::to_string(i) + ".w", dtype, shape, layouts[i % 4]});
  }
  specs.push_back({"model", "big", DType::F32, {512, 1024}, for_load ? Layout::Flat : Layout::Dim0Blocks});
  return specs;
}

bool has_link(hid_t file, const char* path) { return H5Lexists(file, path, H5P_DEFAULT) > 0; }

MPI_Comm first_ranks(int count) {
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < count ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

TEST(Packed, ManySmallTensorsRoundTripBitExactOnEveryRankCount) {
  const int n = world_size(), rank = world_rank();
  SharedTempDir dir;
  fs::path saved;
  {
    TestState state(many_small(600, false), rank, n);
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    saved = io.save(state.snapshot());
  }
  if (rank == 0) {
    const hid_t f = H5Fopen(saved.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    EXPECT_TRUE(has_link(f, "/_ckptio/packed/model"));
    EXPECT_TRUE(has_link(f, "/_ckptio/packed/optimizer"));
    EXPECT_TRUE(has_link(f, "/_ckptio/packed/ema"));
    EXPECT_FALSE(has_link(f, "/model/experts.0.w"));  // packed: no dataset of its own
    EXPECT_TRUE(has_link(f, "/model/big"));           // 2 MiB: its own dataset
    H5Fclose(f);
    detail::h5::ContainerReader reader(MPI_COMM_NULL, saved.string());
    EXPECT_EQ(reader.format_version(), 2);
    const auto index = reader.read_index();
    std::size_t packed = 0;
    for (const auto& t : index.tensors) {
      packed += t.packed_offset.has_value();
      if (t.packed_offset) EXPECT_EQ(*t.packed_offset % detail::h5::kPackedAlignment, 0u) << t.name;
    }
    EXPECT_EQ(packed, 600u);
  }
  const VerifyReport report = verify_container(MPI_COMM_WORLD, saved);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(report.format_version, 2);
  EXPECT_EQ(report.tensors, 601u);
  // Loaded with other layouts on every rank count from 1 to n.
  for (int q = 1; q <= n; ++q) {
    SCOPED_TRACE("load on " + std::to_string(q) + " ranks");
    MPI_Comm comm = first_ranks(q);
    if (comm == MPI_COMM_NULL) continue;
    TestState loaded(many_small(600, true), rank, q);
    loaded.poison();
    CheckpointIO io(comm, dir.path());
    io.load(saved, loaded.snapshot());
    EXPECT_EQ(loaded.check(), "");
    MPI_Comm_free(&comm);
  }
}

// Replicated small tensors: the plan spreads their writing over the ranks, and each rank's
// tensors lie together in their group's packed dataset (in index order among them), so
// that its writes and reads are a few long runs rather than one per tensor.
TEST(Packed, EachWritersTensorsLieTogether) {
  const int n = world_size(), rank = world_rank();
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 200; ++i)
    specs.push_back({"model", "experts." + std::to_string(i), DType::BF16, {3 + i % 7, 8}, Layout::Replicated});
  SharedTempDir dir;
  fs::path saved;
  {
    TestState state(specs, rank, n);
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    saved = io.save(state.snapshot());
  }
  if (rank == 0) {
    detail::h5::ContainerReader reader(MPI_COMM_NULL, saved.string());
    const auto index = reader.read_index();
    std::vector<std::pair<std::uint64_t, int>> by_offset;  // packed offset, writer
    std::vector<int> tensors_per_writer(n, 0);
    for (const auto& t : index.tensors) {
      ASSERT_TRUE(t.packed_offset.has_value()) << t.name;
      ASSERT_EQ(t.pieces.size(), 1u) << t.name;
      by_offset.emplace_back(*t.packed_offset, t.pieces[0].writer);
      ++tensors_per_writer[t.pieces[0].writer];
    }
    std::sort(by_offset.begin(), by_offset.end());
    for (std::size_t i = 1; i < by_offset.size(); ++i)
      EXPECT_LE(by_offset[i - 1].second, by_offset[i].second)
          << "writer " << by_offset[i - 1].second << "'s tensors are interleaved with another's";
    for (int r = 0; r < n; ++r) EXPECT_GT(tensors_per_writer[r], 0) << "rank " << r << " writes none";
  }
  TestState loaded(specs, rank, n);
  loaded.poison();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  io.load(saved, loaded.snapshot());
  EXPECT_EQ(loaded.check(), "");
}

TEST(Packed, FormatVersion1StillLoadsAndVerifies) {
  const int n = world_size(), rank = world_rank();
  SharedTempDir dir;
  fs::path saved;
  {
    const ScopedEnv unpacked(kUnpackedEnv, "0");
    TestState state(many_small(60, false), rank, n);
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    saved = io.save(state.snapshot());
  }
  if (rank == 0) {
    detail::h5::ContainerReader reader(MPI_COMM_NULL, saved.string());
    EXPECT_EQ(reader.format_version(), 1);
    const auto index = reader.read_index();
    EXPECT_TRUE(std::none_of(index.tensors.begin(), index.tensors.end(),
                             [](const auto& t) { return t.packed_offset.has_value(); }));
    const hid_t f = H5Fopen(saved.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_TRUE(has_link(f, "/model/experts.0.w"));
    EXPECT_FALSE(has_link(f, "/_ckptio/packed"));
    H5Fclose(f);
  }
  const VerifyReport report = verify_container(MPI_COMM_WORLD, saved);
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_EQ(report.format_version, 1);
  TestState loaded(many_small(60, true), rank, n);
  loaded.poison();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  io.load(saved, loaded.snapshot());
  EXPECT_EQ(loaded.check(), "");
}

// Replaces the index of `file` by `edit` applied to it (dropping its checksum attribute,
// so that what is tested is the check of the packed place).
template <class Edit>
void rewrite_index(const fs::path& file, Edit&& edit) {
  std::string text;
  {
    detail::h5::ContainerReader reader(MPI_COMM_NULL, file.string());
    text = reader.read_bytes(detail::h5::kIndexDataset, 1 << 24);
  }
  nlohmann::json index = nlohmann::json::parse(text);
  edit(index);
  text = index.dump();
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  H5Adelete(f, detail::h5::kAttrIndexXxh3);
  H5Ldelete(f, detail::h5::kIndexDataset, H5P_DEFAULT);
  const hsize_t size = text.size();
  const hid_t space = H5Screate_simple(1, &size, nullptr);
  const hid_t d = H5Dcreate2(f, detail::h5::kIndexDataset, H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data());
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
}

nlohmann::json& tensor_entry(nlohmann::json& index, const std::string& name) {
  for (auto& t : index["tensors"])
    if (t["name"] == name) return t;
  throw std::runtime_error("no tensor " + name);
}

TEST(Packed, PackedPlacesOutsideThePackedDatasetAreAgreedFormatErrors) {
  const int n = world_size(), rank = world_rank();
  SharedTempDir dir;
  fs::path saved;
  const std::vector<TensorSpec> specs = {{"model", "a", DType::F32, {64}, Layout::Flat},
                                         {"model", "b", DType::F32, {16, 4}, Layout::Dim0Blocks}};
  {
    TestState state(specs, rank, n);
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir / "root");
    saved = io.save(state.snapshot());
  }
  // a at 0 (256 bytes), b at 256 (256 bytes): the packed dataset holds 512 bytes.
  const fs::path beyond = dir / "beyond.h5", huge = dir / "huge.h5", old = dir / "old.h5";
  if (rank == 0) {
    for (const auto& p : {beyond, huge, old}) fs::copy_file(saved, p);
    rewrite_index(beyond, [](nlohmann::json& index) { tensor_entry(index, "b")["packed"]["offset"] = 320; });
    rewrite_index(huge, [](nlohmann::json& index) {
      tensor_entry(index, "a")["packed"]["offset"] = std::uint64_t{0x7fffffffffffffff};
    });
    const hid_t f = H5Fopen(old.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t a = H5Aopen(f, detail::h5::kAttrFormatVersion, H5P_DEFAULT);
    const long long v = 1;
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir / "root");
  TestState loaded(specs, rank, n);
  std::string msg = expect_agreed_error<FormatError>([&] { io.load(beyond, loaded.snapshot()); });
  EXPECT_NE(
      msg.find(beyond.string() +
               ": tensor /model/b claims bytes [320, 576) of /_ckptio/packed/model, which holds 512 bytes: damaged"),
      std::string::npos)
      << msg;
  msg = expect_agreed_error<FormatError>([&] { io.load(huge, loaded.snapshot()); });
  EXPECT_NE(msg.find(huge.string() + ": tensor /model/a claims bytes [9223372036854775807, 9223372036854776063) of "
                                     "/_ckptio/packed/model, which holds 512 bytes: damaged"),
            std::string::npos)
      << msg;
  msg = expect_agreed_error<FormatError>([&] { io.load(old, loaded.snapshot()); });
  EXPECT_NE(msg.find(old.string() + ": tensor /model/a is packed, which container format version 1 does not have"),
            std::string::npos)
      << msg;
  const VerifyReport report = verify_container(MPI_COMM_WORLD, beyond);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.problems[0].find("claims bytes [320, 576) of /_ckptio/packed/model"), std::string::npos)
      << report.problems[0];
}

}  // namespace
}  // namespace ckptio::test
