#include "container_totals.hpp"

#include <algorithm>
#include <iterator>

#include "ckptio/snapshot.hpp"

namespace ckptio::tool {
namespace {

// Position of a group in the container order; a group this tool does not know (a newer
// format) sorts after the known ones but is still counted.
std::size_t group_rank(const std::string& group) {
  const auto* found = std::find(std::begin(ckptio::kGroupNames), std::end(ckptio::kGroupNames), group);
  return static_cast<std::size_t>(found - std::begin(ckptio::kGroupNames));
}

}  // namespace

ContainerTotals container_totals(const ckptio::ContainerInfo& info) {
  ContainerTotals totals;
  for (const auto& tensor : info.tensors) {
    auto group = std::find_if(totals.groups.begin(), totals.groups.end(),
                              [&](const GroupTotals& g) { return g.group == tensor.group; });
    if (group == totals.groups.end()) group = totals.groups.insert(group, {tensor.group, 0, 0});
    ++group->tensors;
    group->bytes += tensor.bytes;
    ++totals.tensors;
    totals.tensor_bytes += tensor.bytes;
  }
  std::stable_sort(totals.groups.begin(), totals.groups.end(), [](const GroupTotals& a, const GroupTotals& b) {
    return group_rank(a.group) < group_rank(b.group);
  });
  for (auto size : info.rank_blob_sizes) totals.rank_blob_bytes += size;
  return totals;
}

}  // namespace ckptio::tool
