// NCCL between the CUDA devices of the ranks, for sending replicated pieces on load straight
// from device to device. Declared for every build; without NCCL (or without CUDA),
// nccl_supported() is false and the rest throws UsageError. The communicator is created
// from a unique id that the caller distributes (this layer does not talk MPI for it).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace ckptio::detail::cuda {

// True when ckptio was built with NCCL (whether or not a GPU is present).
bool nccl_supported() noexcept;

// The 16-byte UUID of CUDA device `device`, as raw bytes: two ranks that see the same
// physical GPU get the same string (NCCL refuses two ranks on one GPU). Throws IoError.
std::string device_uuid(int device);

// A new NCCL unique id (its raw bytes), made by one rank and handed to all. Throws IoError.
std::string nccl_unique_id();

// One point-to-point transfer of `bytes` bytes of device memory with rank `peer`.
struct NcclTransfer {
  void* data = nullptr;
  std::size_t bytes = 0;
  int peer = 0;
  bool send = false;  // false: receive into data
};

// An NCCL communicator of `nranks` ranks, this one being `rank`, on CUDA device `device`,
// with a non-blocking CUDA stream of its own. Move-only; destroys the communicator and the
// stream on destruction.
class NcclComm {
 public:
  NcclComm();  // empty: no communicator
  // Collective over the nranks ranks that got the same id. Throws IoError naming the NCCL
  // or CUDA error.
  NcclComm(const std::string& unique_id, int nranks, int rank, int device);
  ~NcclComm();
  NcclComm(NcclComm&&) noexcept;
  NcclComm& operator=(NcclComm&&) noexcept;

  explicit operator bool() const { return state_ != nullptr; }
  int device() const;

  // Posts the transfers as one NCCL group on the communicator's stream and waits for them.
  // Every rank's sends to a peer match that peer's receives from it, in order. Collective
  // in the NCCL sense: each peer must post its matching transfers in its own call.
  void exchange(const std::vector<NcclTransfer>& transfers);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ckptio::detail::cuda
