// Replicated pieces of a load into CUDA device memory go from device to device over NCCL
// when every rank has a GPU of its own, and over MPI through host memory otherwise (ranks
// sharing a GPU, which NCCL refuses). Skipped (with the reason) where this process sees no
// CUDA device or ckptio was built without CUDA or NCCL.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "cuda/nccl_comm.hpp"
#include "support/device_mirror.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

bool all_ranks(bool mine) {
  int v = mine;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return v;
}

bool nccl_usable() { return all_ranks(detail::cuda::nccl_supported() && detail::cuda::device_count() > 0); }

std::string skip_reason() {
  if (!detail::cuda::device_supported()) return "ckptio was built without CUDA (GPU tests skipped)";
  if (!detail::cuda::nccl_supported()) return "ckptio was built without NCCL (NCCL tests skipped)";
  return "no CUDA device is usable here (GPU tests skipped)";
}

// This rank's GPU: its rank on its node, modulo the devices it sees; `own` when no other rank
// of the node uses it.
struct NodeGpu {
  int device = 0;
  bool own = false;
};

NodeGpu node_gpu() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local_rank = 0, local_size = 1;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  const int count = detail::cuda::device_count();
  return {local_rank % count, local_size <= count};
}

// One rank, one GPU: a communicator of one rank sends a device buffer to itself.
TEST(NcclReplicas, OneRankSendsToItselfOnItsGpu) {
  if (!nccl_usable()) GTEST_SKIP() << skip_reason();
  if (world_size() != 1) GTEST_SKIP() << "runs with one rank (NCCL refuses two ranks on one GPU)";
  constexpr std::size_t kBytes = 3 << 20;
  std::vector<std::uint8_t> pattern(kBytes), back(kBytes, 0);
  for (std::size_t i = 0; i < kBytes; ++i) pattern[i] = static_cast<std::uint8_t>(i * 7 + 3);
  void* from = detail::cuda::alloc_device(kBytes, 0);
  void* to = detail::cuda::alloc_device(kBytes, 0);
  detail::cuda::copy_host_to_device(from, pattern.data(), kBytes, 0);
  detail::cuda::copy_host_to_device(to, back.data(), kBytes, 0);
  {
    detail::cuda::NcclComm comm(detail::cuda::nccl_unique_id(), 1, 0, 0);
    EXPECT_EQ(comm.device(), 0);
    comm.exchange({{from, kBytes, 0, true}, {to, kBytes, 0, false}});
  }
  detail::cuda::copy_device_to_host(back.data(), to, kBytes, 0);
  detail::cuda::free_device(from, 0);
  detail::cuda::free_device(to, 0);
  EXPECT_EQ(std::memcmp(back.data(), pattern.data(), kBytes), 0);
}

// Replicated tensors loaded into device memory, twice with one CheckpointIO (the NCCL
// communicator is made once and reused). With a GPU per rank they travel over NCCL; with
// ranks sharing a GPU (or one rank, which has no replicas) nothing goes over NCCL and the
// MPI path delivers them.
TEST(NcclReplicas, ReplicatedDeviceLoadUsesNcclWithAGpuPerRank) {
  if (!nccl_usable()) GTEST_SKIP() << skip_reason();
  const NodeGpu gpu = node_gpu();
  const bool own_gpus = all_ranks(gpu.own);
  SharedTempDir dir;
  const std::vector<TensorSpec> specs = {{"model", "w", DType::F32, {256, 64}, Layout::Replicated},
                                         {"model", "b", DType::BF16, {64}, Layout::Replicated},
                                         {"ema", "w", DType::F32, {256, 64}, Layout::Dim0Blocks}};
  TestState host(specs, world_rank(), world_size());
  host.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(host.snapshot());
  const std::int64_t replicated_bytes = 256 * 64 * 4 + 64 * 2;
  const std::int64_t expected_nccl = own_gpus ? (world_size() - 1) * replicated_bytes : 0;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("load " + std::to_string(round + 1));
    host.poison();
    DeviceMirror device(host.snapshot(), gpu.device);
    device.upload(host.snapshot());
    const auto r = io.load(path, device.snapshot());
    device.download(host.snapshot());
    EXPECT_EQ(host.check(), "");
    EXPECT_EQ(sum_over_ranks(r.bytes_read), 2 * 256 * 64 * 4 + 64 * 2);
    EXPECT_EQ(sum_over_ranks(r.bytes_received), (world_size() - 1) * replicated_bytes);
    EXPECT_EQ(sum_over_ranks(r.bytes_received_nccl), expected_nccl);
  }
}

// Some ranks load into device memory, others into host memory: the replicas go over MPI.
TEST(NcclReplicas, MixedHostAndDeviceTargetsUseMpi) {
  if (!nccl_usable()) GTEST_SKIP() << skip_reason();
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  const NodeGpu gpu = node_gpu();
  SharedTempDir dir;
  const std::vector<TensorSpec> specs = {{"optimizer", "m", DType::F64, {33, 7, 5}, Layout::Replicated}};
  TestState host(specs, world_rank(), world_size());
  host.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const auto path = io.save(host.snapshot());
  host.poison();
  DeviceMirror device(host.snapshot(), gpu.device);
  device.upload(host.snapshot());
  const bool on_device = world_rank() % 2 == 0;
  const auto r = io.load(path, on_device ? device.snapshot() : host.snapshot());
  if (on_device) device.download(host.snapshot());
  EXPECT_EQ(host.check(), "");
  EXPECT_EQ(sum_over_ranks(r.bytes_received), (world_size() - 1) * 33 * 7 * 5 * 8);
  EXPECT_EQ(r.bytes_received_nccl, 0u);
}

}  // namespace
}  // namespace ckptio::test
