#include "mpi/comm.hpp"

#include <sched.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <limits>
#include <thread>
#include <utility>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "mpi/mpi_error.hpp"

namespace ckptio::detail {

namespace {

// Words of cpu_affinity_words: as many as cpu_set_t has bits.
#if defined(__linux__)
constexpr std::size_t kAffinityWords = (CPU_SETSIZE + 63) / 64;
#else
constexpr std::size_t kAffinityWords = 1;
#endif

}  // namespace

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
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      rank_(other.rank_),
      size_(other.size_),
      sleep_while_waiting_(other.sleep_while_waiting_) {}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    Comm tmp(std::move(*this));
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    rank_ = other.rank_;
    size_ = other.size_;
    sleep_while_waiting_ = other.sleep_while_waiting_;
  }
  return *this;
}

int Comm::wait_sleeping(int started, MPI_Request& request) const {
  if (started != MPI_SUCCESS) return started;
  constexpr auto kLongestPause = std::chrono::microseconds(2000);
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) return rc;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kLongestPause);
  }
}

template <class Start, class Blocking>
void Comm::collective(const char* what, Start&& start, Blocking&& blocking) const {
  if (!sleep_while_waiting_) {
    check_mpi(blocking(), what);
    return;
  }
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(wait_sleeping(start(request), request), what);
}

void Comm::barrier() const {
  collective(
      "MPI_Barrier", [&](MPI_Request& request) { return MPI_Ibarrier(comm_, &request); },
      [&] { return MPI_Barrier(comm_); });
}

std::vector<std::string> Comm::allgather_bytes(const std::string& mine) const {
  if (mine.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error("metadata of this rank exceeds 2 GiB");
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(size_), displs(size_);
  collective(
      "MPI_Allgather",
      [&](MPI_Request& request) { return MPI_Iallgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_, &request); },
      [&] { return MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_); });
  long long total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[r] = static_cast<int>(total);
    total += lens[r];
  }
  if (total > std::numeric_limits<int>::max()) throw Error("gathered metadata exceeds 2 GiB");
  std::string all(static_cast<std::size_t>(total), '\0');
  collective(
      "MPI_Allgatherv",
      [&](MPI_Request& request) {
        return MPI_Iallgatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, comm_,
                               &request);
      },
      [&] {
        return MPI_Allgatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, comm_);
      });
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
  collective(
      "MPI_Allgather",
      [&](MPI_Request& request) { return MPI_Iallgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_, &request); },
      [&] { return MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_); });
  long long total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[r] = static_cast<int>(total);
    total += lens[r];
  }
  if (total > std::numeric_limits<int>::max()) throw Error("gathered metadata exceeds 2 GiB");
  std::string all(rank_ == root ? static_cast<std::size_t>(total) : 0, '\0');
  collective(
      "MPI_Gatherv",
      [&](MPI_Request& request) {
        return MPI_Igatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, root, comm_,
                            &request);
      },
      [&] {
        return MPI_Gatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, root, comm_);
      });
  std::vector<std::string> out;
  if (rank_ != root) return out;
  out.resize(size_);
  for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], lens[r]);
  return out;
}

std::vector<std::uint64_t> Comm::allgather_u64(std::uint64_t mine) const {
  std::vector<std::uint64_t> out(size_);
  collective(
      "MPI_Allgather",
      [&](MPI_Request& request) {
        return MPI_Iallgather(&mine, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, comm_, &request);
      },
      [&] { return MPI_Allgather(&mine, 1, MPI_UINT64_T, out.data(), 1, MPI_UINT64_T, comm_); });
  return out;
}

void Comm::bcast_bytes(std::string& data, int root) const {
  unsigned long long len = data.size();
  collective(
      "MPI_Bcast",
      [&](MPI_Request& request) { return MPI_Ibcast(&len, 1, MPI_UNSIGNED_LONG_LONG, root, comm_, &request); },
      [&] { return MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, root, comm_); });
  data.resize(len);
  if (len > static_cast<unsigned long long>(std::numeric_limits<int>::max())) throw Error("broadcast exceeds 2 GiB");
  if (len == 0) return;
  const int count = static_cast<int>(len);
  collective(
      "MPI_Bcast",
      [&](MPI_Request& request) { return MPI_Ibcast(data.data(), count, MPI_BYTE, root, comm_, &request); },
      [&] { return MPI_Bcast(data.data(), count, MPI_BYTE, root, comm_); });
}

void Comm::allreduce(const void* in, void* out, MPI_Datatype type, MPI_Op op) const {
  collective(
      "MPI_Allreduce", [&](MPI_Request& request) { return MPI_Iallreduce(in, out, 1, type, op, comm_, &request); },
      [&] { return MPI_Allreduce(in, out, 1, type, op, comm_); });
}

std::int64_t Comm::allreduce_min(std::int64_t value) const {
  std::int64_t out = 0;
  allreduce(&value, &out, MPI_INT64_T, MPI_MIN);
  return out;
}
std::int64_t Comm::allreduce_max(std::int64_t value) const {
  std::int64_t out = 0;
  allreduce(&value, &out, MPI_INT64_T, MPI_MAX);
  return out;
}
std::int64_t Comm::allreduce_sum(std::int64_t value) const {
  std::int64_t out = 0;
  allreduce(&value, &out, MPI_INT64_T, MPI_SUM);
  return out;
}
std::int64_t Comm::allreduce_bitwise_or(std::int64_t value) const {
  std::int64_t out = 0;
  allreduce(&value, &out, MPI_INT64_T, MPI_BOR);
  return out;
}
void Comm::allreduce_bitwise_or(std::vector<std::uint64_t>& values) const {
  constexpr std::size_t kMaxCount = 1u << 30;  // MPI counts are ints
  for (std::size_t at = 0; at < values.size(); at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, values.size() - at));
    collective(
        "MPI_Allreduce",
        [&](MPI_Request& request) {
          return MPI_Iallreduce(MPI_IN_PLACE, values.data() + at, count, MPI_UINT64_T, MPI_BOR, comm_, &request);
        },
        [&] { return MPI_Allreduce(MPI_IN_PLACE, values.data() + at, count, MPI_UINT64_T, MPI_BOR, comm_); });
  }
}
double Comm::allreduce_max(double value) const {
  double out = 0;
  allreduce(&value, &out, MPI_DOUBLE, MPI_MAX);
  return out;
}

bool node_oversubscribed(const Comm& comm) {
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type (ranks on this node)");
  int node_ranks = 1;
  const int size_rc = MPI_Comm_size(node, &node_ranks);
  // The union of the node's affinity masks, and one more word: nonzero where some rank could
  // not read its mask.
  std::vector<std::uint64_t> words = cpu_affinity_words();
  const bool mask_known = !words.empty();
  words.resize(kAffinityWords + 1, 0);
  words.back() = mask_known ? 0 : 1;
  const int union_rc =
      size_rc != MPI_SUCCESS
          ? MPI_SUCCESS
          : MPI_Allreduce(MPI_IN_PLACE, words.data(), static_cast<int>(words.size()), MPI_UINT64_T, MPI_BOR, node);
  MPI_Comm_free(&node);
  check_mpi(size_rc, "MPI_Comm_size (ranks on this node)");
  check_mpi(union_rc, "MPI_Allreduce (CPU affinity of the ranks on this node)");
  const bool every_mask_known = words.back() == 0;
  words.pop_back();
  const unsigned cores = node_cores(every_mask_known ? std::optional(std::move(words)) : std::nullopt,
                                    std::thread::hardware_concurrency());
  return cores > 0 && static_cast<unsigned>(node_ranks) > cores;
}

std::vector<std::uint64_t> cpu_affinity_words() {
  std::vector<std::uint64_t> words;
#if defined(__linux__)
  cpu_set_t mask;
  CPU_ZERO(&mask);
  // Fails (EINVAL) where the kernel's mask is wider than cpu_set_t: then unknown.
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) return words;
  words.assign(kAffinityWords, 0);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &mask)) words[cpu / 64] |= std::uint64_t{1} << (cpu % 64);
#endif
  return words;
}

unsigned node_cores(const std::optional<std::vector<std::uint64_t>>& affinity_union, unsigned cores_online) {
  if (!affinity_union) return cores_online;
  unsigned cpus = 0;
  for (const std::uint64_t word : *affinity_union) cpus += static_cast<unsigned>(std::popcount(word));
  return cpus > 0 ? cpus : cores_online;
}

}  // namespace ckptio::detail
