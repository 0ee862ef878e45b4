#include "inspect_json.hpp"

#include "ckptio/dtype.hpp"
#include "container_totals.hpp"

namespace ckptio::tool {
namespace {

nlohmann::json running_state_document(const ckptio::RunningState& running) {
  return {
      {"epoch", running.epoch},
      {"step", running.step},
      {"global_step", running.global_step},
      {"lr_scheduler", running.lr_scheduler},
      {"sampler", running.sampler},
      {"extras", running.extras},
  };
}

nlohmann::json tensor_document(const ckptio::TensorInfo& tensor) {
  const std::size_t element_size = ckptio::dtype_size(tensor.dtype);
  return {
      {"group", tensor.group},
      {"name", tensor.name},
      {"dtype", std::string(ckptio::dtype_name(tensor.dtype))},
      {"shape", tensor.shape},
      {"elements", element_size > 0 ? tensor.bytes / element_size : 0},
      {"bytes", tensor.bytes},
      {"pieces", tensor.pieces},
  };
}

nlohmann::json totals_document(const ContainerTotals& totals) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& group : totals.groups) {
    groups.push_back({{"group", group.group}, {"tensors", group.tensors}, {"bytes", group.bytes}});
  }
  return {
      {"groups", std::move(groups)},
      {"tensors", totals.tensors},
      {"tensor_bytes", totals.tensor_bytes},
      {"rank_blob_bytes", totals.rank_blob_bytes},
  };
}

}  // namespace

nlohmann::json inspect_document(const ckptio::ContainerInfo& info) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& tensor : info.tensors) tensors.push_back(tensor_document(tensor));
  return {
      {"schema", kInspectSchema},
      {"path", info.path.string()},
      {"file_bytes", info.file_bytes},
      {"format_version", info.format_version},
      {"library_version", info.library_version},
      {"created", info.created},
      {"host", info.host},
      {"world_size", info.world_size},
      {"running", running_state_document(info.running)},
      {"rank_blob_bytes", info.rank_blob_sizes},
      {"tensors", std::move(tensors)},
      {"totals", totals_document(container_totals(info))},
  };
}

}  // namespace ckptio::tool
