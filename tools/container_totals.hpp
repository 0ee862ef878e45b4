// ckptio tool: the sums that `inspect` reports, computed once for its text and JSON output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ckptio/inspect.hpp"

namespace ckptio::tool {

struct GroupTotals {
  std::string group;
  std::size_t tensors = 0;
  std::uint64_t bytes = 0;
};

struct ContainerTotals {
  std::vector<GroupTotals> groups;  // the groups that hold tensors, in container order
  std::size_t tensors = 0;
  std::uint64_t tensor_bytes = 0;
  std::uint64_t rank_blob_bytes = 0;
};

ContainerTotals container_totals(const ckptio::ContainerInfo& info);

}  // namespace ckptio::tool
