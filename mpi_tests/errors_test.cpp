// Every error is the same exception on every rank, with a message that names the file,
// group, tensor and rank; nothing is left behind and nobody hangs (ctest's timeout).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>

#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

bool has_substr(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The root holds exactly the given names (plus nothing else that is a checkpoint or partial).
std::vector<std::string> root_entries(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(root)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Errors, ShapeDisagreementBetweenRanks) {
  const int n = world_size(), rank = world_rank();
  if (n < 2) GTEST_SKIP() << "needs 2 ranks";
  SharedTempDir dir;
  std::vector<float> data(5, 1.0f);
  Snapshot s;
  s.model.emplace().add("w", TensorShard::whole(data.data(), DType::F32, {rank == n - 1 ? 5 : 4}));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<MismatchError>([&] { io.save(s); });
  EXPECT_EQ(msg, "[ckptio] [rank 0] save: tensor model/w has global shape [4] on rank 0 but [5] on rank " +
                     std::to_string(n - 1));
  EXPECT_EQ(root_entries(dir.path()), std::vector<std::string>{".ckptio.lock"}) << dir.path();
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0 releases the lock when io goes away
}

TEST(Errors, BadArgumentOnOneRankOnly) {
  const int n = world_size(), rank = world_rank();
  SharedTempDir dir;
  std::vector<float> data(8, 1.0f);
  Snapshot s;
  const std::int64_t offset = rank == n - 1 ? 7 : 0;  // the last rank's block runs past the end
  s.model.emplace().add("layer.weight", TensorShard::block(data.data(), DType::F32, {8}, {offset}, {4}));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<UsageError>([&] { io.save(s); });
  EXPECT_EQ(msg, "[ckptio] [rank " + std::to_string(n - 1) + "] save: tensor model/layer.weight on rank " +
                     std::to_string(n - 1) + ": block offset [7] count [4] exceeds global shape [8]");
}

TEST(Errors, IncompleteCoverage) {
  SharedTempDir dir;
  std::vector<float> data(8, 1.0f);
  Snapshot s;
  s.model.emplace().add("w", TensorShard::block(data.data(), DType::F32, {100}, {0}, {8}));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<UsageError>([&] { io.save(s); });
  EXPECT_TRUE(has_substr(msg, "tensor model/w of shape [100]: the ranks' pieces cover 8 of its 100 elements")) << msg;
}

TEST(Errors, RunningStateDisagreement) {
  const int n = world_size(), rank = world_rank();
  if (n < 2) GTEST_SKIP() << "needs 2 ranks";
  SharedTempDir dir;
  Snapshot s;
  s.running.sampler = {{"position", rank == n - 1 ? 7 : 6}};
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<MismatchError>([&] { io.save(s); });
  EXPECT_EQ(msg, "[ckptio] [rank 0] save: running state field 'sampler' differs between rank 0 and rank " +
                     std::to_string(n - 1) + "; it must be the same on every rank");
}

TEST(Errors, NegativeStepsAndKeepLast) {
  SharedTempDir dir;
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    Snapshot s;
    s.running.global_step = -1;
    expect_agreed_error<UsageError>([&] { io.save(s); });
  }
  expect_agreed_error<UsageError>([&] { CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.keep_last = -1}); });
}

class LoadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    TestState state({{"model", "a", DType::F32, {6, 4}, Layout::Dim0Blocks},
                     {"model", "b", DType::I32, {5}, Layout::Flat},
                     {"ema", "a", DType::F32, {6, 4}, Layout::Replicated}},
                    world_rank(), world_size());
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir_.path());
    path_ = io.save(state.snapshot());
  }
  SharedTempDir dir_;
  fs::path path_;
};

TEST_F(LoadErrors, StrictLoadListsMissingAndUnexpectedKeys) {
  TestState target({{"model", "b", DType::I32, {5}, Layout::Replicated}, {"model", "c", DType::F32, {2}, Layout::Flat}},
                   world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const auto msg = expect_agreed_error<MismatchError>([&] { io.load(path_, target.snapshot()); });
  EXPECT_EQ(msg, "[ckptio] [rank 0] load: " + path_.string() +
                     ": state dict does not match the checkpoint (strict load); missing keys (1): model/c; unexpected "
                     "keys (1): model/a");
}

TEST_F(LoadErrors, NonStrictLoadReturnsTheKeysAndLoadsTheRest) {
  TestState target({{"model", "b", DType::I32, {5}, Layout::Replicated}, {"model", "c", DType::F32, {2}, Layout::Flat}},
                   world_rank(), world_size());
  target.poison();
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const LoadResult r = io.load(path_, target.snapshot(), {.strict = false});
  EXPECT_EQ(r.keys.missing, (std::vector<KeyReport::Key>{{"model", "c"}}));
  EXPECT_EQ(r.keys.unexpected, (std::vector<KeyReport::Key>{{"model", "a"}}));
  const auto* b = target.snapshot().model->find("b");
  EXPECT_EQ(check_pattern(*b, seed_for("model/b")), "");
}

TEST_F(LoadErrors, DTypeMismatchOnOneRank) {
  const int n = world_size(), rank = world_rank();
  const DType wanted = rank == n - 1 ? DType::F16 : DType::I32;
  TestState target({{"model", "a", DType::F32, {6, 4}, Layout::Flat}, {"model", "b", wanted, {5}, Layout::Replicated}},
                   rank, n);
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const auto msg = expect_agreed_error<MismatchError>([&] { io.load(path_, target.snapshot()); });
  EXPECT_EQ(msg, "[ckptio] [rank " + std::to_string(n - 1) + "] load " + path_.string() + ": " + path_.string() +
                     ": tensor model/b on rank " + std::to_string(n - 1) + ": requested as F16 but stored as I32");
}

TEST_F(LoadErrors, ShapeMismatch) {
  TestState target({{"model", "a", DType::F32, {4, 6}, Layout::Flat}, {"model", "b", DType::I32, {5}, Layout::Flat}},
                   world_rank(), world_size());
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const auto msg = expect_agreed_error<MismatchError>([&] { io.load(path_, target.snapshot()); });
  EXPECT_TRUE(has_substr(msg, "tensor model/a on rank ")) << msg;
  EXPECT_TRUE(has_substr(msg, "requested with global shape [4, 6] but stored with [6, 4]")) << msg;
}

TEST_F(LoadErrors, MissingFileAndNonContainerFiles) {
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  auto msg = expect_agreed_error<IoError>([&] { io.load(dir_ / "nope.h5", Snapshot{}); });
  EXPECT_TRUE(has_substr(msg, "no such checkpoint: " + (dir_ / "nope.h5").string())) << msg;

  const fs::path text = dir_ / "text.h5";
  const fs::path plain = dir_ / "plain.h5";
  const fs::path truncated = dir_ / "truncated.h5";
  if (world_rank() == 0) {
    std::ofstream(text) << "this is not HDF5\n";
    hid_t f = H5Fcreate(plain.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    fs::copy_file(path_, truncated);
    fs::resize_file(truncated, fs::file_size(truncated) / 2);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  msg = expect_agreed_error<FormatError>([&] { io.load(text, Snapshot{}); });
  EXPECT_TRUE(has_substr(msg, text.string() + " is not an HDF5 file")) << msg;
  msg = expect_agreed_error<FormatError>([&] { io.load(plain, Snapshot{}); });
  EXPECT_TRUE(has_substr(msg, plain.string() + " is an HDF5 file but not a ckptio container")) << msg;
  msg = expect_agreed_error<FormatError>([&] { io.load(truncated, Snapshot{}); });
  EXPECT_TRUE(has_substr(msg, "cannot open " + truncated.string() + " as HDF5 (damaged or truncated?): ")) << msg;
  EXPECT_TRUE(has_substr(msg, "H5Fopen")) << "the HDF5 error stack belongs in the message: " << msg;
}

TEST_F(LoadErrors, FutureFormatVersionIsRefused) {
  const fs::path future = dir_ / "future.h5";
  if (world_rank() == 0) {
    fs::copy_file(path_, future);
    hid_t f = H5Fopen(future.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "ckptio_format_version", H5P_DEFAULT);
    const long long v = 99;
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const auto msg = expect_agreed_error<FormatError>([&] { io.load(future, Snapshot{}); });
  EXPECT_TRUE(has_substr(msg, future.string() + " has container format version 99; this ckptio reads versions 1 to 2 "
                                                "(written by a newer ckptio: upgrade to read it)"))
      << msg;
}

// Options that only load_checkpoint uses are refused by CheckpointIO's loads instead of being
// ignored, agreed when one rank alone sets one.
TEST_F(LoadErrors, LoadCheckpointOnlyOptionsAreRefused) {
  const int n = world_size(), last = n - 1;
  TestState target({{"model", "b", DType::I32, {5}, Layout::Replicated}}, world_rank(), n);
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const std::string prefix = "[ckptio] [rank " + std::to_string(last) + "] ";
  LoadOptions options;
  if (world_rank() == last) options.group = "model";
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.load(path_, target.snapshot(), options); }),
            prefix +
                "load: LoadOptions::group applies to load_checkpoint only; CheckpointIO loads the groups its "
                "Snapshot holds");
  options = {};
  if (world_rank() == last) options.revision = "main";
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.load_latest(target.snapshot(), options); }),
            prefix +
                "load_latest: LoadOptions::revision applies to load_checkpoint only; CheckpointIO loads its own "
                "checkpoints, not a Hugging Face repo");
  options = {};
  if (world_rank() == last) options.convert_dtype = true;
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.load(path_, target.snapshot(), options); }),
            prefix +
                "load: LoadOptions::convert_dtype applies to load_checkpoint only; CheckpointIO loads tensors in "
                "the dtype they were saved in");
}

// A shard made from a pointer to const can be saved from but not loaded into: every load
// refuses it before reading, and the memory keeps its values.
TEST_F(LoadErrors, ReadOnlyShardsAreSavedButNotLoadedInto) {
  const int n = world_size(), last = n - 1;
  const std::vector<std::int32_t> constant = {1, 2, 3, 4, 5};
  std::vector<std::int32_t> writable(5, -1);
  StateDict weights;
  if (world_rank() == last)
    weights.add("b", TensorShard::whole(constant.data(), DType::I32, {5}));
  else
    weights.add("b", TensorShard::whole(writable.data(), DType::I32, {5}));
  Snapshot targets;
  targets.model = weights;
  CheckpointIO io(MPI_COMM_WORLD, dir_.path());
  const std::string where = "tensor model/b on rank " + std::to_string(last) +
                            ": its shard is read-only (made from a pointer to const) and a load writes into it";
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.load(path_, targets, {.strict = false}); }),
            "[ckptio] [rank " + std::to_string(last) + "] load: " + where);
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.load_latest(targets, {.strict = false}); }),
            "[ckptio] [rank " + std::to_string(last) + "] load_latest: " + where);
  EXPECT_EQ(expect_agreed_error<UsageError>(
                [&] { load_checkpoint(MPI_COMM_WORLD, weights, path_.string(), {.strict = false, .group = "model"}); }),
            "[ckptio] [rank " + std::to_string(last) + "] load_checkpoint " + path_.string() + ": tensor b on rank " +
                std::to_string(last) +
                ": its shard is read-only (made from a pointer to const) and a load writes "
                "into it");
  EXPECT_EQ(constant, (std::vector<std::int32_t>{1, 2, 3, 4, 5}));
  if (world_rank() != last) EXPECT_EQ(writable, std::vector<std::int32_t>(5, -1));

  // Saving from the same read-only memory works, and loads back bit for bit.
  Snapshot from_const;
  from_const.model.emplace().add("b", TensorShard::whole(constant.data(), DType::I32, {5}));
  from_const.running.global_step = 2;
  const fs::path saved = io.save(from_const);
  std::vector<std::int32_t> back(5, 0);
  Snapshot into;
  into.model.emplace().add("b", TensorShard::whole(back.data(), DType::I32, {5}));
  io.load(saved, into);
  EXPECT_EQ(back, constant);
}

// load_checkpoint reports a container's keys with their group, like CheckpointIO::load.
TEST_F(LoadErrors, LoadCheckpointReportsKeysWithTheirGroup) {
  TestState target({{"model", "b", DType::I32, {5}, Layout::Replicated}, {"model", "c", DType::F32, {2}, Layout::Flat}},
                   world_rank(), world_size());
  target.poison();
  const LoadCheckpointResult r =
      load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, path_.string(), {.strict = false, .group = "model"});
  EXPECT_EQ(r.keys.missing, (std::vector<KeyReport::Key>{{"model", "c"}}));
  EXPECT_EQ(r.keys.unexpected, (std::vector<KeyReport::Key>{{"model", "a"}}));
  EXPECT_EQ(check_pattern(*target.snapshot().model->find("b"), seed_for("model/b")), "");
  EXPECT_EQ(r.files, (std::vector<fs::path>{path_}));
}

}  // namespace
}  // namespace ckptio::test
