// save_async: the same checkpoint as save, a staging copy that makes the caller's tensors
// free as soon as it returns, errors surfacing at the next wait on every rank, waiting on
// destruction, and the staging cap.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/fault.hpp"
#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "h5/container_reader.hpp"
#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

std::vector<TensorSpec> mixed_specs() {
  return {{"model", "w", DType::F32, {64, 48}, Layout::Dim0Blocks},
          {"model", "b", DType::BF16, {48}, Layout::Replicated},
          {"optimizer", "w.exp_avg", DType::F32, {64, 48}, Layout::Flat},
          {"ema", "w", DType::F32, {64, 48}, Layout::LastDimBlocks},
          {"ema", "step", DType::I64, {}, Layout::Replicated}};
}

// The index of the container at `path`, read by this rank alone.
detail::h5::ContainerIndex index_of(const fs::path& path) {
  return detail::h5::ContainerReader(MPI_COMM_SELF, path.string()).read_index();
}

std::string read_latest_line(const fs::path& root) {
  std::ifstream in(root / "latest");
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(AsyncSave, WritesWhatSaveWritesAndLoadsBitExact) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  state.snapshot().running.global_step = 7;
  state.snapshot().running.sampler = {{"seed", 3}};
  state.snapshot().rank_blob = {1, 2, static_cast<std::uint8_t>(world_rank())};
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path path = io.save_async(state.snapshot());
  EXPECT_EQ(path, dir / "epoch0-global_step7.h5");
  EXPECT_TRUE(io.save_in_flight());
  io.wait();
  EXPECT_FALSE(io.save_in_flight());
  EXPECT_GT(io.last_save_seconds(), 0.0);
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step7.h5");

  state.poison();
  const auto r = io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
  EXPECT_EQ(r.running.global_step, 7);
  EXPECT_EQ(r.running.sampler, state.snapshot().running.sampler);
  EXPECT_EQ(r.rank_blob, state.snapshot().rank_blob);

  // The same tensors, pieces and writers as a synchronous save of the same state.
  state.fill();
  state.snapshot().running.global_step = 8;
  const fs::path sync_path = io.save(state.snapshot());
  const auto async_info = inspect_container(path);
  const auto sync_info = inspect_container(sync_path);
  ASSERT_EQ(async_info.tensors.size(), sync_info.tensors.size());
  for (std::size_t i = 0; i < sync_info.tensors.size(); ++i) {
    EXPECT_EQ(async_info.tensors[i].name, sync_info.tensors[i].name);
    EXPECT_EQ(async_info.tensors[i].pieces, sync_info.tensors[i].pieces);
  }
}

// Every rank holds every tensor whole (one replica per rank): each piece is written by one
// rank, so save_async stages only the tensors this rank writes, a 1/n share of them (it used
// to stage all of them on every rank), and writes what a synchronous save writes.
TEST(AsyncSave, StagesOnlyThePiecesThisRankWrites) {
  const int n = world_size();
  constexpr int kTensors = 12;
  constexpr std::uint64_t kTensorBytes = 16 * 1024;  // 4096 F32
  std::vector<TensorSpec> specs;
  for (int i = 0; i < kTensors; ++i) specs.push_back({"model", "t" + std::to_string(i), DType::F32, {4096}});
  SharedTempDir dir;
  TestState state(specs, world_rank(), n);
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 1;
  const fs::path async_path = io.save_async(state.snapshot());
  io.wait();
  // 12 equal tensors balanced by bytes over n writers (n divides 12 for n = 1..4).
  ASSERT_EQ(kTensors % n, 0);
  EXPECT_EQ(io.staging_bytes(), kTensorBytes * kTensors / static_cast<std::uint64_t>(n));
  state.snapshot().running.global_step = 2;
  const fs::path sync_path = io.save(state.snapshot());
  // The same pieces, writers and data checksums as the synchronous save.
  const auto async_index = index_of(async_path);
  const auto sync_index = index_of(sync_path);
  ASSERT_EQ(async_index.tensors.size(), static_cast<std::size_t>(kTensors));
  ASSERT_EQ(sync_index.tensors.size(), async_index.tensors.size());
  for (std::size_t i = 0; i < sync_index.tensors.size(); ++i) {
    const auto& a = async_index.tensors[i];
    const auto& b = sync_index.tensors[i];
    EXPECT_EQ(a.name, b.name);
    ASSERT_EQ(a.pieces.size(), 1u);
    ASSERT_EQ(b.pieces.size(), 1u);
    EXPECT_EQ(a.pieces[0].writer, b.pieces[0].writer);
    EXPECT_EQ(a.pieces[0].xxh3, b.pieces[0].xxh3) << a.name;
  }
  state.poison();
  io.load(async_path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

// save_async copies the pieces it writes and checksums them in the same pass, on the caller's
// thread: pieces of several checksum chunks, pieces that start inside a shard (flat ranges
// over rows, column blocks) and replicas written by one rank must get the checksums that a
// synchronous save of the same state computes from the same bytes.
TEST(AsyncSave, ChecksumsTakenWhileStagingEqualTheSynchronousSaves) {
  const std::vector<TensorSpec> specs = {{"model", "w", DType::F32, {1000, 1100}, Layout::Flat},
                                         {"model", "emb", DType::BF16, {1537, 1024}, Layout::Dim0Blocks},
                                         {"optimizer", "w.exp_avg", DType::F32, {700, 1024}, Layout::Replicated},
                                         {"ema", "w", DType::F32, {600, 1030}, Layout::LastDimBlocks}};
  SharedTempDir dir;
  TestState state(specs, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 1;
  const fs::path async_path = io.save_async(state.snapshot());
  io.wait();
  state.snapshot().running.global_step = 2;
  const fs::path sync_path = io.save(state.snapshot());
  const auto async_index = index_of(async_path);
  const auto sync_index = index_of(sync_path);
  ASSERT_EQ(async_index.tensors.size(), sync_index.tensors.size());
  std::size_t chunked_pieces = 0;
  for (std::size_t i = 0; i < sync_index.tensors.size(); ++i) {
    EXPECT_EQ(async_index.tensors[i].name, sync_index.tensors[i].name);
    EXPECT_EQ(async_index.tensors[i].pieces, sync_index.tensors[i].pieces) << async_index.tensors[i].name;
    for (const auto& piece : async_index.tensors[i].pieces) chunked_pieces += piece.chunks.empty() ? 0 : 1;
  }
  EXPECT_GT(chunked_pieces, 0u);  // the test covers pieces of several chunks
  state.poison();
  io.load(async_path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, TensorsChangedRightAfterReturnDoNotChangeWhatIsWritten) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path path = io.save_async(state.snapshot());
  state.poison(0x00);  // training goes on and overwrites its tensors at once
  io.wait();
  state.poison(0x5A);
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, StagingBufferIsReusedAcrossSaves) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.keep_last = 2});
  EXPECT_EQ(io.staging_bytes(), 0u);
  for (int g = 1; g <= 5; ++g) {
    state.snapshot().running.global_step = g;
    io.save_async(state.snapshot());  // waits for the previous one
    if (g == 1) ASSERT_GT(io.staging_bytes(), 0u);
  }
  const auto first_capacity = io.staging_bytes();
  io.wait();
  EXPECT_EQ(io.staging_bytes(), first_capacity);
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step5.h5");
  MPI_Barrier(MPI_COMM_WORLD);
  std::size_t containers = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) containers += e.path().extension() == ".h5";
  EXPECT_EQ(containers, 2u);
}

TEST(AsyncSave, ReservedStagingIsUsedWithoutGrowingAndWritesWhatSaveWrites) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  io.reserve_staging(state.snapshot());
  const auto reserved = io.staging_bytes();
  ASSERT_GT(reserved, 0u);
  state.snapshot().running.global_step = 1;
  const fs::path async_path = io.save_async(state.snapshot());
  EXPECT_EQ(io.staging_bytes(), reserved);  // exactly what save_async needed: no growth
  io.wait();

  // An explicit size: larger grows, smaller keeps; save_async keeps it too.
  io.reserve_staging(reserved + 5000 + static_cast<std::uint64_t>(world_rank()));
  EXPECT_EQ(io.staging_bytes(), reserved + 5000 + static_cast<std::uint64_t>(world_rank()));
  io.reserve_staging(16);
  EXPECT_EQ(io.staging_bytes(), reserved + 5000 + static_cast<std::uint64_t>(world_rank()));
  state.snapshot().running.global_step = 2;
  io.save_async(state.snapshot());
  // Reserving while a save is in flight waits for it (the save reads the pool).
  io.reserve_staging(reserved * 2);
  EXPECT_FALSE(io.save_in_flight());
  EXPECT_EQ(io.staging_bytes(), reserved * 2);

  // What a synchronous save of the same state writes: the same tensors and pieces, and
  // tensors that load back bit-exact.
  state.snapshot().running.global_step = 3;
  const fs::path sync_path = io.save(state.snapshot());
  const auto async_info = inspect_container(async_path);
  const auto sync_info = inspect_container(sync_path);
  ASSERT_EQ(async_info.tensors.size(), sync_info.tensors.size());
  for (std::size_t i = 0; i < sync_info.tensors.size(); ++i) {
    EXPECT_EQ(async_info.tensors[i].name, sync_info.tensors[i].name);
    EXPECT_EQ(async_info.tensors[i].pieces, sync_info.tensors[i].pieces);
  }
  state.poison();
  io.load(async_path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

// Bytes of this process's mappings advised MADV_HUGEPAGE ("hg" in /proc/self/smaps).
std::uint64_t huge_page_advised_bytes() {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  std::uint64_t total = 0, size_kib = 0;
  while (std::getline(smaps, line)) {
    if (line.rfind("Size:", 0) == 0) size_kib = std::stoull(line.substr(5));
    if (line.rfind("VmFlags:", 0) == 0 && line.find(" hg") != std::string::npos) total += size_kib * 1024;
  }
  return total;
}

TEST(AsyncSave, StagingHugePagesOptionAdvisesThePool) {
  if (detail::cuda::device_count() > 0) GTEST_SKIP() << "the pool is page-locked CUDA memory here";
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  const std::uint64_t bytes = 8u << 20;
  {
    const auto before = huge_page_advised_bytes();
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    io.reserve_staging(bytes);
    EXPECT_EQ(huge_page_advised_bytes(), before);  // off by default
  }
  const auto before = huge_page_advised_bytes();
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.staging_huge_pages = true});
  io.reserve_staging(bytes);
  EXPECT_GE(huge_page_advised_bytes(), before + bytes);
  const fs::path path = io.save_async(state.snapshot());
  EXPECT_EQ(io.staging_bytes(), bytes);  // the snapshot fits in what was reserved
  io.wait();
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, StagingCapFallsBackToSynchronousSave) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.max_staging_bytes = 1024});
  state.snapshot().running.global_step = 3;
  const fs::path path = io.save_async(state.snapshot());
  EXPECT_FALSE(io.save_in_flight());  // written before returning
  EXPECT_EQ(io.staging_bytes(), 0u);
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step3.h5");
  state.poison();
  io.load(path, state.snapshot());
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, BackgroundErrorSurfacesOnEveryRankAndKeepsPreviousCheckpoint) {
  SharedTempDir dir;
  TestState state({{"model", "w", DType::F32, {16, 4}, Layout::Replicated}}, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 1;
  io.save_async(state.snapshot());
  io.wait();
  // The running state differs on the last rank: the plan, made before save_async returns,
  // fails there, and nothing goes to the background.
  state.snapshot().running.global_step = 2;
  if (world_rank() == world_size() - 1) state.snapshot().running.epoch = 9;
  if (world_size() > 1) {
    const auto msg = expect_agreed_error<MismatchError>([&] { io.save_async(state.snapshot()); });
    EXPECT_EQ(msg, "[ckptio] [rank 0] save: running state field 'epoch' differs between rank 0 and rank " +
                       std::to_string(world_size() - 1) + "; it must be the same on every rank");
    EXPECT_FALSE(io.save_in_flight());
    io.wait();  // nothing to report
  }
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step1.h5");
  state.snapshot().running.epoch = 0;
  state.poison();
  const auto r = io.load_latest(state.snapshot());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->running.global_step, 1);
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, DestructionWaitsForTheSaveInFlight) {
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path());
    state.snapshot().running.global_step = 11;
    io.save_async(state.snapshot());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step11.h5");
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.poison();
  ASSERT_TRUE(io.load_latest(state.snapshot()));
  EXPECT_EQ(state.check(), "");
}

TEST(AsyncSave, UnusableDeviceMemoryIsRefusedBeforeStaging) {
  if (detail::cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is usable here";
  SharedTempDir dir;
  std::vector<float> host(4);
  Snapshot s;
  s.model.emplace();
  auto shard = TensorShard::whole(host.data(), DType::F32, {4});
  shard.device = 0;
  s.model->add("w", shard);
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto msg = expect_agreed_error<UsageError>([&] { io.save_async(s); });
  const std::string reason = detail::cuda::device_supported()
                                 ? "CUDA device 0 is not usable in this process (it sees 0 CUDA devices)"
                                 : "device memory (CUDA device 0) is not supported by this build; pass host memory";
  EXPECT_EQ(msg, "[ckptio] [rank 0] save_async: tensor model/w on rank 0: " + reason);
  EXPECT_FALSE(io.save_in_flight());
  const std::string sync_operation = detail::cuda::device_supported() ? "save: copy device tensors to host" : "save";
  EXPECT_EQ(expect_agreed_error<UsageError>([&] { io.save(s); }),
            "[ckptio] [rank 0] " + sync_operation + ": tensor model/w on rank 0: " + reason);
}

// Run by CTest with CKPTIO_FAULT_INJECT=save.write@1#2:throw: the second save's writes fail
// on rank 1 inside the I/O thread.
TEST(AsyncFaultInjection, WriteFailureOnOneRankSurfacesAtWaitOnEveryRank) {
  if (!detail::fault_injection_compiled())
    GTEST_SKIP() << "fault injection is not compiled in (configure with -DCKPTIO_FAULT_INJECTION=ON)";
  const char* spec = std::getenv("CKPTIO_FAULT_INJECT");
  if (!spec || std::string(spec) != "save.write@1#2:throw" || world_size() < 2)
    GTEST_SKIP() << "run by CTest with CKPTIO_FAULT_INJECT=save.write@1#2:throw on 2+ ranks";
  SharedTempDir dir;
  TestState state(mixed_specs(), world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  state.snapshot().running.global_step = 10;
  io.save_async(state.snapshot());
  state.snapshot().running.global_step = 20;
  io.save_async(state.snapshot());  // waits for step 10 (fine), then fails in the background
  const auto msg = expect_agreed_error<IoError>([&] { io.wait(); });
  EXPECT_EQ(msg, "[ckptio] [rank 1] save: write " + (dir / "epoch0-global_step20.h5.partial").string() +
                     ": injected fault at save.write");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step20.h5.partial"));
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step10.h5");
  state.snapshot().running.global_step = 30;
  io.save_async(state.snapshot());
  io.wait();
  EXPECT_EQ(read_latest_line(dir.path()), "epoch0-global_step30.h5");
}

}  // namespace
}  // namespace ckptio::test
