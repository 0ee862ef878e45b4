// Checksums on load: a flipped byte in a tensor's data region is an IntegrityError naming
// file, tensor and piece, agreed by every rank, also when the load reshards; verification
// can be switched off, for CheckpointIO::load and load_checkpoint alike; load_latest falls
// back past a checkpoint that fails verification; verify_container reports the damage.
// Tensors here are larger than one checksum chunk (1 MiB) so that partial reads of stored
// pieces are exercised.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>

#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

// Byte offset of a contiguous dataset's data in the file (rank 0 only; serial HDF5).
std::uint64_t data_offset(const fs::path& file, const char* dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

void flip_byte(const fs::path& file, std::uint64_t at) {
  std::fstream s(file, std::ios::in | std::ios::out | std::ios::binary);
  s.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  s.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  s.seekp(static_cast<std::streamoff>(at));
  s.write(&c, 1);
}

// 2560 x 1024 F32 = 10 MiB: ten checksum chunks when one rank writes it.
const std::vector<TensorSpec> kSaved = {{"model", "w", DType::F32, {2560, 1024}, Layout::Dim0Blocks},
                                        {"model", "b", DType::F32, {1024}, Layout::Replicated}};

std::vector<TensorSpec> with_layout(Layout layout) {
  auto specs = kSaved;
  specs[0].layout = layout;
  return specs;
}

TEST(Integrity, ResharededLoadsVerifyWithoutFalseAlarms) {
  SharedTempDir dir;
  TestState saved(kSaved, world_rank(), world_size());
  saved.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  io.save(saved.snapshot());
  for (Layout layout : {Layout::Flat, Layout::SkewedFlat, Layout::Dim1Blocks, Layout::SkewedDim0, Layout::Replicated}) {
    TestState loaded(with_layout(layout), world_rank(), world_size());
    loaded.poison();
    io.load(dir.path(), loaded.snapshot());
    EXPECT_EQ(loaded.check(), "") << layout_name(layout);
  }
}

TEST(Integrity, OneLargePieceLoadedInPartsIsVerifiedChunkByChunk) {
  // Saved whole (one 10 MiB piece, ten chunks), loaded in row, flat and column parts:
  // every rank reads only the chunks its part touches.
  SharedTempDir dir;
  TestState saved(with_layout(Layout::Replicated), world_rank(), world_size());
  saved.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path file = io.save(saved.snapshot());
  for (Layout layout : {Layout::Dim0Blocks, Layout::Flat, Layout::SkewedFlat, Layout::Dim1Blocks}) {
    TestState loaded(with_layout(layout), world_rank(), world_size());
    loaded.poison();
    io.load(file, loaded.snapshot());
    EXPECT_EQ(loaded.check(), "") << layout_name(layout);
  }
  // A flip in the last chunk: an error for every layout, since some rank reads that chunk.
  if (world_rank() == 0) flip_byte(file, data_offset(file, "/model/w") + (2560ull * 1024 - 3) * 4);
  MPI_Barrier(MPI_COMM_WORLD);
  for (Layout layout : {Layout::Dim0Blocks, Layout::Flat, Layout::Dim1Blocks}) {
    TestState loaded(with_layout(layout), world_rank(), world_size());
    const auto msg = expect_agreed_error<IntegrityError>([&] { io.load(file, loaded.snapshot()); });
    EXPECT_NE(msg.find("tensor model/w, piece 0 of 1 (offset [0, 0], count [2560, 1024]), written by rank 0, bytes "
                       "9437184..10485760 (checksum chunk 9 of 10): data does not match its checksum"),
              std::string::npos)
        << msg;
  }
}

TEST(Integrity, FlippedDataByteIsAnAgreedIntegrityErrorAndLoadLatestFallsBack) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  SharedTempDir dir;
  TestState state(kSaved, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 10;
  io.save(state.snapshot());
  state.snapshot().running.global_step = 20;
  const fs::path file = io.save(state.snapshot());
  // Element (1500, 7) of model/w: in the last rank's piece, past the first checksum chunk
  // of a piece written by one rank.
  const std::uint64_t element = 1500 * 1024 + 7;
  if (world_rank() == 0) flip_byte(file, data_offset(file, "/model/w") + element * 4 + 1);
  MPI_Barrier(MPI_COMM_WORLD);

  for (Layout layout : {Layout::Dim0Blocks, Layout::Flat, Layout::Dim1Blocks}) {
    TestState loaded(with_layout(layout), world_rank(), world_size());
    const auto msg = expect_agreed_error<IntegrityError>([&] { io.load(file, loaded.snapshot()); });
    EXPECT_NE(msg.find(file.string() + ": tensor model/w, piece "), std::string::npos) << msg;
    EXPECT_NE(msg.find("data does not match its checksum"), std::string::npos) << msg;
  }
  // Switched off, the damaged value comes through.
  TestState unchecked(kSaved, world_rank(), world_size());
  io.load(file, unchecked.snapshot(), {.verify = false});
  const std::string problem = unchecked.check();
  const int holds = problem.empty() ? 0 : 1;
  int any = 0;
  MPI_Allreduce(&holds, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(any, 1) << "the flipped byte should have reached some rank";

  // load_checkpoint verifies a container the same way (LoadOptions::verify), and can skip it.
  for (Layout layout : {Layout::Dim0Blocks, Layout::Flat}) {
    TestState weights(with_layout(layout), world_rank(), world_size());
    const auto msg = expect_agreed_error<IntegrityError>(
        [&] { load_checkpoint(MPI_COMM_WORLD, *weights.snapshot().model, file.string(), {.group = "model"}); });
    EXPECT_NE(msg.find("load_checkpoint " + file.string() + ": " + file.string() + ": tensor model/w, piece "),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("data does not match its checksum"), std::string::npos) << msg;
    load_checkpoint(MPI_COMM_WORLD, *weights.snapshot().model, file.string(), {.verify = false, .group = "model"});
    const int damaged = weights.check().empty() ? 0 : 1;
    int seen = 0;
    MPI_Allreduce(&damaged, &seen, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(seen, 1) << layout_name(layout) << ": the flipped byte should have reached some rank";
  }

  // load_latest skips the damaged checkpoint for the older one, loudly.
  TestState loaded(kSaved, world_rank(), world_size());
  loaded.poison();
  const auto r = io.load_latest(loaded.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 10);
  EXPECT_EQ(r->path, dir / "epoch0-global_step10.h5");
  EXPECT_EQ(loaded.check(), "");

  // verify_container names the tensor and piece, on every rank alike.
  const auto report = verify_container(MPI_COMM_WORLD, file);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("tensor model/w, piece "), std::string::npos) << report.problems[0];
  EXPECT_EQ(report.format_version, 1);
  const auto good = verify_container(MPI_COMM_WORLD, dir / "epoch0-global_step10.h5");
  EXPECT_TRUE(good.ok()) << (good.problems.empty() ? "" : good.problems[0]);
  EXPECT_EQ(good.bytes_verified, 2560u * 1024 * 4 + 1024 * 4);
}

TEST(Integrity, FlippedRunningStateAndBlobAreIntegrityErrors) {
  SharedTempDir dir;
  TestState state(kSaved, world_rank(), world_size());
  state.fill();
  state.snapshot().running.extras = {{"note", "abcdefgh"}};
  state.snapshot().rank_blob = std::vector<std::uint8_t>(64, static_cast<std::uint8_t>(world_rank()));
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path file = io.save(state.snapshot());
  const fs::path copy = dir / "blob-damaged.h5";
  if (world_rank() == 0) {
    fs::copy_file(file, copy);
    flip_byte(copy, data_offset(copy, "/_ckptio/rank_blobs") + 3);
    flip_byte(file, data_offset(file, "/_ckptio/running_state") + 20);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto msg = expect_agreed_error<IntegrityError>([&] { io.load(file, state.snapshot()); });
  EXPECT_NE(msg.find("the running state does not match its checksum"), std::string::npos) << msg;
  msg = expect_agreed_error<IntegrityError>([&] { io.load(copy, state.snapshot()); });
  if (world_size() == 1 || world_rank() == 0)
    EXPECT_NE(msg.find("the blob of saving rank 0 does not match its checksum"), std::string::npos) << msg;
  const auto report = verify_container(MPI_COMM_WORLD, copy);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("blob of saving rank 0"), std::string::npos);
}

}  // namespace
}  // namespace ckptio::test
