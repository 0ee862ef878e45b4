#include "load_result.hpp"

namespace ckptio::python {

namespace {

py::bytes to_bytes(const std::vector<std::uint8_t>& data) {
  return py::bytes(reinterpret_cast<const char*>(data.data()), data.size());
}

}  // namespace

py::list keys_to_python(const std::vector<KeyReport::Key>& keys) {
  py::list out;
  for (const auto& key : keys) out.append(py::make_tuple(key.group, key.name));
  return out;
}

void add_running_state(py::dict& out, const RunningState& running) {
  out["epoch"] = running.epoch;
  out["step"] = running.step;
  out["global_step"] = running.global_step;
  out["lr_scheduler"] = running.lr_scheduler.dump();
  out["sampler"] = running.sampler.dump();
  out["extras"] = running.extras.dump();
}

py::dict load_result_to_python(const LoadResult& result) {
  py::dict out;
  out["path"] = result.path;
  out["level"] = result.level;
  add_running_state(out, result.running);
  out["rank_blob"] = to_bytes(result.rank_blob);
  py::list saved;
  for (const auto& blob : result.saved_rank_blobs) saved.append(to_bytes(blob));
  out["saved_rank_blobs"] = saved;
  out["saved_world_size"] = result.saved_world_size;
  out["missing"] = keys_to_python(result.keys.missing);
  out["unexpected"] = keys_to_python(result.keys.unexpected);
  out["bytes_read"] = result.bytes_read;
  out["bytes_received"] = result.bytes_received;
  out["bytes_received_nccl"] = result.bytes_received_nccl;
  return out;
}

}  // namespace ckptio::python
