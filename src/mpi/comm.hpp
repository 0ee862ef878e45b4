// A move-only RAII communicator: always a duplicate of the caller's, freed on destruction
// (unless MPI is already finalized).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <optional>
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
  // From now on this communicator's collectives wait for the other ranks by polling their
  // nonblocking form with sleeps in between (20 us, doubling up to 2 ms) instead of in the
  // blocking call, which spins on a core (Open MPI's progress loop) for as long as the
  // slowest rank takes. For a background thread that shares the cores with the training
  // loop: it trades up to 2 ms of latency per collective for an idle core. A collective
  // made by MPI-IO or HDF5 on this communicator still waits in MPI's own way.
  void sleep_while_waiting() { sleep_while_waiting_ = true; }
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
  // One element of `type` from every rank, reduced with `op`.
  void allreduce(const void* in, void* out, MPI_Datatype type, MPI_Op op) const;
  // MPI_SUCCESS once `request` completed (started with `started`), polled with sleeps.
  int wait_sleeping(int started, MPI_Request& request) const;
  // Runs one collective and throws naming `what` when it fails: when this communicator
  // sleeps while waiting, the nonblocking form (`start(request)` returns its error code)
  // polled with sleeps, else the blocking form (`blocking()`).
  template <class Start, class Blocking>
  void collective(const char* what, Start&& start, Blocking&& blocking) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool sleep_while_waiting_ = false;
};

// Throws ckptio::Error naming `what` when an MPI call fails.
void check_mpi(int rc, const char* what);

// Whether this rank's node runs more of comm's ranks than the cores they may run on (the
// union of their CPU affinity masks, so that a job given part of a node counts its part and
// ranks bound to one core each are not mistaken for ranks sharing one): there a rank that
// spins in a collective takes a core from a rank that still works. Collective over comm.
bool node_oversubscribed(const Comm& comm);

// The CPUs this thread may run on (its affinity mask) as bit words: bit c % 64 of word c / 64
// stands for CPU c. Empty where the mask cannot be read.
std::vector<std::uint64_t> cpu_affinity_words();

// The cores a node's ranks may run on: the CPUs set in `affinity_union` (the union of their
// cpu_affinity_words), or `cores_online` (0: unknown) where that is unknown (nullopt: some
// rank could not read its mask) or names no CPU.
unsigned node_cores(const std::optional<std::vector<std::uint64_t>>& affinity_union, unsigned cores_online);

}  // namespace ckptio::detail
