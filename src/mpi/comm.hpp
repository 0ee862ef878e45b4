// A move-only RAII communicator: always a duplicate of the caller's, freed on destruction
// (unless MPI is already finalized).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ckptio::detail {

class Comm {
 public:
  Comm() = default;
  // Duplicates `comm`. Collective over comm.
  explicit Comm(MPI_Comm comm);
  ~Comm();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  void barrier() const;
  // Every rank's bytes, in rank order.
  std::vector<std::string> allgather_bytes(const std::string& mine) const;
  std::vector<std::uint64_t> allgather_u64(std::uint64_t mine) const;
  // Every rank's bytes, in rank order, on `root` only (empty elsewhere).
  std::vector<std::string> gather_bytes(const std::string& mine, int root) const;
  // `data` from `root` to every rank.
  void bcast_bytes(std::string& data, int root) const;
  std::int64_t allreduce_min(std::int64_t value) const;
  std::int64_t allreduce_max(std::int64_t value) const;
  std::int64_t allreduce_sum(std::int64_t value) const;
  std::int64_t allreduce_bitwise_or(std::int64_t value) const;
  // Element by element, in place; every rank passes as many values.
  void allreduce_bitwise_or(std::vector<std::uint64_t>& values) const;
  double allreduce_max(double value) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

// Throws ckptio::Error naming `what` when an MPI call fails.
void check_mpi(int rc, const char* what);

}  // namespace ckptio::detail
