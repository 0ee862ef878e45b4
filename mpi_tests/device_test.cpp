// Shards in CUDA device memory: saved through host staging, loaded back into device memory
// in another split, alongside host shards; synchronously and with save_async. Skipped
// (with the reason) where this process sees no CUDA device or ckptio was built without CUDA.
#include <gtest/gtest.h>

#include <memory>

#include "cuda/device.hpp"
#include "cuda/memory.hpp"
#include "support/device_mirror.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

bool device_usable() {
  int usable = detail::cuda::device_supported() && detail::cuda::device_count() > 0;
  MPI_Allreduce(MPI_IN_PLACE, &usable, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return usable;
}

std::string skip_reason() {
  return detail::cuda::device_supported() ? "no CUDA device is usable here (GPU tests skipped)"
                                          : "ckptio was built without CUDA (GPU tests skipped)";
}

TEST(DeviceTensors, SaveFromDeviceLoadIntoDeviceInAnotherSplit) {
  if (!device_usable()) GTEST_SKIP() << skip_reason();
  SharedTempDir dir;
  const std::vector<TensorSpec> saved = {{"model", "w", DType::F32, {96, 40}, Layout::Dim0Blocks},
                                         {"ema", "w", DType::BF16, {96, 40}, Layout::Flat}};
  TestState host(saved, world_rank(), world_size());
  host.fill();
  DeviceMirror device(host.snapshot(), 0);
  device.upload(host.snapshot());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path path = io.save(device.snapshot());

  auto resplit = saved;
  resplit[0].layout = Layout::LastDimBlocks;
  resplit[1].layout = Layout::Replicated;
  TestState host_back(resplit, world_rank(), world_size());
  host_back.poison();
  DeviceMirror device_back(host_back.snapshot(), 0);
  device_back.upload(host_back.snapshot());
  io.load(path, device_back.snapshot());
  device_back.download(host_back.snapshot());
  EXPECT_EQ(host_back.check(), "");
}

TEST(DeviceTensors, SaveAsyncFromDeviceCopiesBeforeReturning) {
  if (!device_usable()) GTEST_SKIP() << skip_reason();
  SharedTempDir dir;
  TestState host({{"model", "w", DType::F32, {64, 64}, Layout::Dim1Blocks}}, world_rank(), world_size());
  host.fill();
  DeviceMirror device(host.snapshot(), 0);
  device.upload(host.snapshot());
  CheckpointIO io(MPI_COMM_WORLD, dir.path());
  const fs::path path = io.save_async(device.snapshot());
  host.poison(0);
  device.upload(host.snapshot());  // the device tensors change at once
  io.wait();
  io.load(path, host.snapshot());
  EXPECT_EQ(host.check(), "");
}

}  // namespace
}  // namespace ckptio::test
