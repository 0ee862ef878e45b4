// Replicated pieces of a load into CUDA device memory, sent from device to device over NCCL
// instead of over MPI through host memory. Used when ckptio is built with NCCL and every
// rank of the communicator loads into device memory on one CUDA device of its own; otherwise
// (host targets, mixed host and device holders, two ranks on one GPU, a rank with shards on
// several devices) the pieces keep to the MPI host path.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/write_plan.hpp"
#include "cuda/nccl_comm.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

// The NCCL communicator of one CheckpointIO: created on the first load that needs it and
// kept until the CheckpointIO goes away; `failed` once creating it failed (not retried).
struct NcclState {
  cuda::NcclComm comm;
  bool failed = false;
};

// Per tensor of the plan, per piece: 1 when the piece goes over NCCL. All empty when none
// does. `request_devices[d]` is the CUDA device of this rank's declaration d of the plan's
// input (kHostMemory for host memory). Creates the communicator when first needed.
// Collective over comm; every rank gets the same answer.
using DevicePieces = std::vector<std::vector<char>>;
DevicePieces plan_device_replicas(const Comm& comm, NcclState& nccl, const WritePlan& plan,
                                  const std::vector<int>& request_devices);

bool any_device_piece(const DevicePieces& pieces);

// Sends every flagged piece from its reader's device memory to the device memory of its
// other holders (the reader's copy must already be on its device); `piece_memory(decl,
// segment)` is the device address of a piece. Returns the bytes this rank received.
// Collective over comm.
std::uint64_t send_device_replicas(const Comm& comm, NcclState& nccl, const WritePlan& plan, const DevicePieces& pieces,
                                   const std::function<char*(int, int)>& piece_memory);

}  // namespace ckptio::detail
