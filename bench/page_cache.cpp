#include "page_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ckptio_bench {

namespace {

// The ranks that share this rank's node (and so its page cache).
class NodeComm {
 public:
  explicit NodeComm(MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_);
    MPI_Comm_rank(node_, &node_rank_);
  }
  ~NodeComm() { MPI_Comm_free(&node_); }
  NodeComm(const NodeComm&) = delete;
  NodeComm& operator=(const NodeComm&) = delete;
  bool is_node_leader() const { return node_rank_ == 0; }

 private:
  MPI_Comm node_ = MPI_COMM_NULL;
  int node_rank_ = 0;
};

// Empty on success, otherwise why the kernel refused.
std::string write_drop_caches() {
  const int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return std::string("cannot open /proc/sys/vm/drop_caches: ") + std::strerror(errno);
  // 3 = page cache plus dentries and inodes, as `echo 3 > /proc/sys/vm/drop_caches`.
  const ssize_t written = ::write(fd, "3\n", 2);
  const int write_errno = errno;
  ::close(fd);
  if (written != 2) return std::string("cannot write /proc/sys/vm/drop_caches: ") + std::strerror(write_errno);
  return {};
}

// The first failing rank's reason, on every rank; empty when no rank failed.
std::string agree_on_failure(MPI_Comm comm, const std::string& local_reason) {
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int first_failing = local_reason.empty() ? size : rank;
  MPI_Allreduce(MPI_IN_PLACE, &first_failing, 1, MPI_INT, MPI_MIN, comm);
  if (first_failing == size) return {};
  std::string reason = rank == first_failing ? local_reason : std::string();
  int length = static_cast<int>(reason.size());
  MPI_Bcast(&length, 1, MPI_INT, first_failing, comm);
  reason.resize(static_cast<std::size_t>(length));
  MPI_Bcast(reason.data(), length, MPI_CHAR, first_failing, comm);
  return reason;
}

}  // namespace

void flush_dirty_pages(MPI_Comm comm) {
  const NodeComm node(comm);
  if (node.is_node_leader()) ::sync();
  MPI_Barrier(comm);
}

CacheDrop drop_page_cache(MPI_Comm comm) {
  const NodeComm node(comm);
  std::string reason;
  if (node.is_node_leader()) {
    // Dirty pages cannot be dropped; write them out first.
    ::sync();
    reason = write_drop_caches();
  }
  CacheDrop result;
  result.why_not = agree_on_failure(comm, reason);
  result.dropped = result.why_not.empty();
  return result;
}

}  // namespace ckptio_bench
