#include "snapshot_builder.hpp"

#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ckptio/error.hpp"

namespace ckptio::python {

namespace {

DType dtype_from_name(const std::string& name) {
  const auto dtype = parse_dtype(name);
  if (!dtype) throw UsageError("unknown dtype '" + name + "'");
  return *dtype;
}

ShardData shard_data(std::uintptr_t address, bool read_only) {
  if (read_only) return ShardData(reinterpret_cast<const void*>(address));
  return ShardData(reinterpret_cast<void*>(address));
}

}  // namespace

TensorShard make_shard(std::uintptr_t address, const std::string& dtype, const Shape& global_shape,
                       const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count, bool read_only,
                       int device) {
  TensorShard shard =
      TensorShard::block(shard_data(address, read_only), dtype_from_name(dtype), global_shape, offset, count);
  shard.device = device;
  return shard;
}

TensorShard make_flat_shard(std::uintptr_t address, const std::string& dtype, const Shape& global_shape,
                            std::int64_t begin, std::int64_t end, bool read_only, int device) {
  TensorShard shard =
      TensorShard::flat(shard_data(address, read_only), dtype_from_name(dtype), global_shape, begin, end);
  shard.device = device;
  return shard;
}

nlohmann::json parse_json_field(const std::string& text, const char* field) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("running state: ") + field + " is not valid JSON: " + e.what());
  }
}

StateDict& SnapshotBuilder::group(const std::string& name) {
  std::optional<StateDict>* slot = nullptr;
  if (name == "model") slot = &snapshot.model;
  if (name == "optimizer") slot = &snapshot.optimizer;
  if (name == "ema") slot = &snapshot.ema;
  if (slot == nullptr) throw UsageError("unknown group '" + name + "' (model, optimizer or ema)");
  if (!*slot) slot->emplace();
  return **slot;
}

void SnapshotBuilder::add_block(const std::string& group_name, const std::string& name, std::uintptr_t address,
                                const std::string& dtype, const Shape& global_shape,
                                const std::vector<std::int64_t>& offset, const std::vector<std::int64_t>& count,
                                bool read_only, int device) {
  group(group_name).add(name, make_shard(address, dtype, global_shape, offset, count, read_only, device));
}

void SnapshotBuilder::add_flat(const std::string& group_name, const std::string& name, std::uintptr_t address,
                               const std::string& dtype, const Shape& global_shape, std::int64_t begin,
                               std::int64_t end, bool read_only, int device) {
  group(group_name).add(name, make_flat_shard(address, dtype, global_shape, begin, end, read_only, device));
}

void SnapshotBuilder::set_running(std::int64_t epoch, std::int64_t step, std::int64_t global_step,
                                  const std::string& lr_scheduler, const std::string& sampler,
                                  const std::string& extras) {
  snapshot.running.epoch = epoch;
  snapshot.running.step = step;
  snapshot.running.global_step = global_step;
  snapshot.running.lr_scheduler = parse_json_field(lr_scheduler, "lr_scheduler");
  snapshot.running.sampler = parse_json_field(sampler, "sampler");
  snapshot.running.extras = parse_json_field(extras, "extras");
}

void bind_snapshot(py::module_& m) {
  py::class_<SnapshotBuilder>(m, "SnapshotBuilder",
                              "A C++ Snapshot over Python-owned memory; built by ckptio.Snapshot for one call.")
      .def(py::init<>())
      .def("add_block", &SnapshotBuilder::add_block, py::arg("group"), py::arg("name"), py::arg("address"),
           py::arg("dtype"), py::arg("global_shape"), py::arg("offset"), py::arg("count"), py::arg("read_only"),
           py::arg("device"))
      .def("add_flat", &SnapshotBuilder::add_flat, py::arg("group"), py::arg("name"), py::arg("address"),
           py::arg("dtype"), py::arg("global_shape"), py::arg("begin"), py::arg("end"), py::arg("read_only"),
           py::arg("device"))
      .def(
          "add_group", [](SnapshotBuilder& self, const std::string& name) { self.group(name); }, py::arg("group"))
      .def("set_running", &SnapshotBuilder::set_running, py::arg("epoch"), py::arg("step"), py::arg("global_step"),
           py::arg("lr_scheduler"), py::arg("sampler"), py::arg("extras"))
      .def(
          "set_rank_blob",
          [](SnapshotBuilder& self, const py::bytes& blob) {
            const std::string_view bytes = blob;
            self.snapshot.rank_blob.assign(bytes.begin(), bytes.end());
          },
          py::arg("blob"));
}

}  // namespace ckptio::python
