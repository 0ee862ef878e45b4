#include "mpi/comm.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "mpi/mpi_error.hpp"

namespace ckptio::detail {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  throw Error(std::string("MPI call failed in ") + what + ": " + mpi_error_string(rc));
}

Comm::Comm(MPI_Comm comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw UsageError("MPI is not initialized: call MPI_Init (or MPI_Init_thread) first");
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  set_log_rank(world_rank);
}

Comm::~Comm() {
  if (comm_ == MPI_COMM_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

Comm::Comm(Comm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_) {}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    Comm tmp(std::move(*this));
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    rank_ = other.rank_;
    size_ = other.size_;
  }
  return *this;
}

void Comm::barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

std::vector<std::string> Comm::allgather_bytes(const std::string& mine) const {
  if (mine.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error("metadata of this rank exceeds 2 GiB");
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(size_), displs(size_);
  check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_), "MPI_Allgather");
  long long total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[r] = static_cast<int>(total);
    total += lens[r];
  }
  if (total > std::numeric_limits<int>::max()) throw Error("gathered metadata exceeds 2 GiB");
  std::string all(static_cast<std::size_t>(total), '\0');
  check_mpi(MPI_Allgatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, comm_),
            "MPI_Allgatherv");
  std::vector<std::string> out(size_);
  for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], lens[r]);
  return out;
}

std::vector<std::string> Comm::gather_bytes(const std::string& mine, int root) const {
  if (mine.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error("metadata of this rank exceeds 2 GiB");
  const int len = static_cast<int>(mine.size());
  // Every rank learns every length, so that all refuse a total over 2 GiB together.
  std::vector<int> lens(size_), displs(size_);
  check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_), "MPI_Allgather");
  long long total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[r] = static_cast<int>(total);
    total += lens[r];
  }
  if (total > std::numeric_limits<int>::max()) throw Error("gathered metadata exceeds 2 GiB");
  std::string all(rank_ == root ? static_cast<std::size_t>(total) : 0, '\0');
  check_mpi(MPI_Gatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, root, comm_),
            "MPI_Gatherv");
  std::vector<std::string> out;
  if (rank_ != root) return out;
  out.resize(size_);
  for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], lens[r]);
  return out;
}

std::vector<std::uint64_t> Comm::allgather_u64(std::uint64_t mine) const {
  std::vector<std::uint64_t> out(size_);
  check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, comm_), "MPI_Allgather");
  return out;
}

void Comm::bcast_bytes(std::string& data, int root) const {
  unsigned long long len = data.size();
  check_mpi(MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, root, comm_), "MPI_Bcast");
  data.resize(len);
  if (len > static_cast<unsigned long long>(std::numeric_limits<int>::max())) throw Error("broadcast exceeds 2 GiB");
  if (len) check_mpi(MPI_Bcast(data.data(), static_cast<int>(len), MPI_BYTE, root, comm_), "MPI_Bcast");
}

std::int64_t Comm::allreduce_min(std::int64_t value) const {
  std::int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MIN, comm_), "MPI_Allreduce");
  return out;
}
std::int64_t Comm::allreduce_max(std::int64_t value) const {
  std::int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, comm_), "MPI_Allreduce");
  return out;
}
std::int64_t Comm::allreduce_sum(std::int64_t value) const {
  std::int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  return out;
}
std::int64_t Comm::allreduce_bitwise_or(std::int64_t value) const {
  std::int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_BOR, comm_), "MPI_Allreduce");
  return out;
}
void Comm::allreduce_bitwise_or(std::vector<std::uint64_t>& values) const {
  constexpr std::size_t kMaxCount = 1u << 30;  // MPI counts are ints
  for (std::size_t at = 0; at < values.size(); at += kMaxCount)
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data() + at, static_cast<int>(std::min(kMaxCount, values.size() - at)),
                            MPI_UINT64_T, MPI_BOR, comm_),
              "MPI_Allreduce");
}
double Comm::allreduce_max(double value) const {
  double out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm_), "MPI_Allreduce");
  return out;
}

}  // namespace ckptio::detail
