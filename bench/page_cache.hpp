// Putting the operating system's page cache into a known state between measurements.
#pragma once

#include <mpi.h>

#include <string>

namespace ckptio_bench {

// Collective over comm. One rank per node flushes dirty pages to storage (sync), so that a
// following timed write does not also pay for earlier writes.
void flush_dirty_pages(MPI_Comm comm);

struct CacheDrop {
  bool dropped = false;
  std::string why_not;  // empty when dropped
};

// Collective over comm. One rank per node flushes dirty pages and drops the clean ones
// (/proc/sys/vm/drop_caches, root only), so that a following read comes from storage and
// not from memory. Reports, on every rank, whether every node managed it.
CacheDrop drop_page_cache(MPI_Comm comm);

}  // namespace ckptio_bench
