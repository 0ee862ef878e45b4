#include "cuda/nccl_comm.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <string>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "cuda/cuda_check.hpp"

namespace ckptio::detail::cuda {

namespace {

using cuda::check;  // CUDA runtime errors (cuda_check.hpp), next to NCCL's below

void check(ncclResult_t rc, const std::string& what, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess) return;
  std::string detail = ncclGetErrorString(rc);
  if (const char* last = ncclGetLastError(comm); last && *last) detail += ": " + std::string(last);
  throw IoError("NCCL: " + what + ": " + detail);
}

// Makes `device` current and restores the caller's current device on leaving, so that the
// application's choice of device is not changed behind its back.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      cudaGetLastError();
      previous_ = -1;
    }
    check(cudaSetDevice(device), "select device " + std::to_string(device));
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace

struct NcclComm::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  ~State() {
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
    cudaSetDevice(device);
    if (comm) {
      if (const ncclResult_t rc = ncclCommDestroy(comm); rc != ncclSuccess)
        log_warn("NCCL: destroying the communicator failed: ", ncclGetErrorString(rc));
    }
    if (stream) cudaStreamDestroy(stream);
    if (previous >= 0) cudaSetDevice(previous);
  }
};

bool nccl_supported() noexcept { return true; }

std::string device_uuid(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "properties of device " + std::to_string(device));
  return std::string(prop.uuid.bytes, sizeof prop.uuid.bytes);
}

std::string nccl_unique_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "create a unique id");
  return std::string(id.internal, sizeof id.internal);
}

NcclComm::NcclComm(const std::string& unique_id, int nranks, int rank, int device) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof id.internal)
    throw UsageError("NCCL: a unique id has " + std::to_string(sizeof id.internal) + " bytes, got " +
                     std::to_string(unique_id.size()));
  std::memcpy(id.internal, unique_id.data(), sizeof id.internal);
  auto state = std::make_unique<State>();
  state->device = device;
  const DeviceScope scope(device);
  check(cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking), "create an NCCL stream");
  check(ncclCommInitRank(&state->comm, nranks, id, rank), "create a communicator of " + std::to_string(nranks) +
                                                              " ranks (rank " + std::to_string(rank) + ", device " +
                                                              std::to_string(device) + ")");
  state_ = std::move(state);
}

NcclComm::NcclComm() = default;
NcclComm::~NcclComm() = default;
NcclComm::NcclComm(NcclComm&&) noexcept = default;
NcclComm& NcclComm::operator=(NcclComm&&) noexcept = default;

int NcclComm::device() const { return state_ ? state_->device : -1; }

void NcclComm::exchange(const std::vector<NcclTransfer>& transfers) {
  if (transfers.empty()) return;
  if (!state_) throw UsageError("NCCL: exchange on an empty communicator");
  const DeviceScope scope(state_->device);
  check(ncclGroupStart(), "start a group", state_->comm);
  ncclResult_t rc = ncclSuccess;
  std::string failed;
  for (const auto& t : transfers) {
    if (t.bytes == 0) continue;
    rc = t.send ? ncclSend(t.data, t.bytes, ncclUint8, t.peer, state_->comm, state_->stream)
                : ncclRecv(t.data, t.bytes, ncclUint8, t.peer, state_->comm, state_->stream);
    if (rc != ncclSuccess) {
      failed = std::string(t.send ? "send " : "receive ") + std::to_string(t.bytes) + " bytes " +
               (t.send ? "to" : "from") + " rank " + std::to_string(t.peer);
      break;
    }
  }
  const ncclResult_t end = ncclGroupEnd();
  check(rc, failed, state_->comm);
  check(end, "run a group of " + std::to_string(transfers.size()) + " transfers", state_->comm);
  check(cudaStreamSynchronize(state_->stream), "wait for NCCL transfers");
}

}  // namespace ckptio::detail::cuda
