// The NCCL layer of a build without NCCL: nothing is supported, every use is refused.
#include <string>

#include "ckptio/error.hpp"
#include "cuda/nccl_comm.hpp"

namespace ckptio::detail::cuda {

namespace {

[[noreturn]] void no_nccl() {
  throw UsageError("NCCL needs ckptio built with CUDA and NCCL (configure with -DCKPTIO_WITH_NCCL=ON)");
}

}  // namespace

struct NcclComm::State {};

bool nccl_supported() noexcept { return false; }
std::string device_uuid(int) { no_nccl(); }
std::string nccl_unique_id() { no_nccl(); }

NcclComm::NcclComm(const std::string&, int, int, int) { no_nccl(); }
NcclComm::NcclComm() = default;
NcclComm::~NcclComm() = default;
NcclComm::NcclComm(NcclComm&&) noexcept = default;
NcclComm& NcclComm::operator=(NcclComm&&) noexcept = default;
int NcclComm::device() const { return -1; }
void NcclComm::exchange(const std::vector<NcclTransfer>& transfers) {
  if (!transfers.empty()) no_nccl();
}

}  // namespace ckptio::detail::cuda
