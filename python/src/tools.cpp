// The calls beside CheckpointIO: export to safetensors, load_checkpoint, verify, inspect and
// the listing of a root. Results are plain dicts and lists.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/load_checkpoint.hpp"
#include "ckptio/safetensors.hpp"
#include "ckptio/verify.hpp"
#include "load_result.hpp"
#include "snapshot_builder.hpp"

namespace ckptio::python {

namespace {

py::dict tensor_info_to_python(const TensorInfo& info) {
  py::dict out;
  out["format"] = to_string(info.format);
  out["name"] = info.name;
  out["dtype"] = std::string(dtype_name(info.dtype));
  out["shape"] = py::tuple(py::cast(info.shape));
  out["bytes"] = info.bytes;
  switch (info.format) {
    case TensorFormat::Container:
      out["group"] = info.group;
      out["pieces"] = info.pieces;
      break;
    case TensorFormat::Safetensors:
      out["file"] = info.file;
      break;
    case TensorFormat::Torch:
      out["storage"] = info.storage;
      out["storage_offset"] = info.storage_offset;
      out["stride"] = py::tuple(py::cast(info.stride));
      out["contiguous"] = info.contiguous;
      break;
  }
  return out;
}

py::list tensors_to_python(const std::vector<TensorInfo>& tensors) {
  py::list out;
  for (const auto& info : tensors) out.append(tensor_info_to_python(info));
  return out;
}

py::list paths_to_python(const std::vector<std::filesystem::path>& paths) {
  py::list out;
  for (const auto& path : paths) out.append(path.string());
  return out;
}

py::dict container_info_to_python(const ContainerInfo& info) {
  py::dict out;
  out["format"] = "container";
  out["path"] = info.path.string();
  out["format_version"] = info.format_version;
  out["library_version"] = info.library_version;
  out["created"] = info.created;
  out["host"] = info.host;
  out["world_size"] = info.world_size;
  out["file_bytes"] = info.file_bytes;
  add_running_state(out, info.running);
  out["rank_blob_sizes"] = py::cast(info.rank_blob_sizes);
  out["tensors"] = tensors_to_python(info.tensors);
  return out;
}

py::dict safetensors_info_to_python(const SafetensorsInfo& info) {
  py::dict out;
  out["format"] = "safetensors";
  out["path"] = info.path.string();
  out["files"] = paths_to_python(info.files);
  out["index"] = info.index ? py::cast(info.index->string()) : py::none();
  out["metadata"] = py::cast(info.metadata);
  out["tensors"] = tensors_to_python(info.tensors);
  out["tensor_bytes"] = info.tensor_bytes;
  out["file_bytes"] = info.file_bytes;
  return out;
}

// Runs a call of the library with the GIL released (it may take long, and collective calls
// must not hold up other Python threads) and returns its result.
template <class Call>
auto without_gil(Call&& call) {
  py::gil_scoped_release release;
  return std::forward<Call>(call)();
}

// The fields of a listing entry that both levels have.
template <class Entry>
py::dict listing_entry_to_python(const Entry& entry) {
  py::dict d;
  d["path"] = entry.path.string();
  d["name"] = entry.name;
  d["epoch"] = entry.epoch;
  d["global_step"] = entry.global_step;
  d["file_bytes"] = entry.file_bytes;
  d["modified"] = entry.modified;
  return d;
}

py::dict checkpoint_entry_to_python(const CheckpointEntry& entry) {
  py::dict d = listing_entry_to_python(entry);
  d["is_latest"] = entry.is_latest;
  return d;
}

py::dict local_checkpoint_entry_to_python(const LocalCheckpointEntry& entry) {
  py::dict d = listing_entry_to_python(entry);
  d["holder"] = entry.holder;
  d["node"] = entry.node;
  d["partner_copy"] = entry.partner_copy;
  d["committed"] = entry.committed;
  d["job"] = entry.job;
  d["nodes"] = entry.nodes;
  return d;
}

template <class Entry>
py::list entries_to_python(const std::vector<Entry>& entries, py::dict (*to_python)(const Entry&)) {
  py::list out;
  for (const auto& entry : entries) out.append(to_python(entry));
  return out;
}

}  // namespace

void bind_tools(py::module_& m) {
  m.def(
      "export_safetensors",
      [](std::uintptr_t comm, const std::string& checkpoint, const std::string& group, const std::string& out,
         std::optional<std::string> dtype, std::uint64_t max_shard_size) {
        const MPI_Comm handle = comm_from_address(comm);
        ExportOptions options;
        if (dtype) {
          const auto parsed = parse_dtype(*dtype);
          if (!parsed) throw UsageError("export_safetensors: unknown dtype '" + *dtype + "'");
          options.dtype = *parsed;
        }
        options.max_shard_size = max_shard_size;
        const ExportResult result =
            without_gil([&] { return export_safetensors(handle, checkpoint, group, out, options); });
        py::dict d;
        d["files"] = paths_to_python(result.files);
        d["index"] = result.index ? py::cast(result.index->string()) : py::none();
        d["tensors"] = result.tensors;
        d["tensor_bytes"] = result.tensor_bytes;
        return d;
      },
      py::arg("comm"), py::arg("checkpoint"), py::arg("group"), py::arg("out"), py::arg("dtype"),
      py::arg("max_shard_size"));

  m.def(
      "load_checkpoint",
      [](std::uintptr_t comm, const SnapshotBuilder& state, const std::string& path, bool strict, bool verify,
         const std::string& group, const std::string& revision, bool convert_dtype) {
        const MPI_Comm handle = comm_from_address(comm);
        LoadOptions options;
        options.strict = strict;
        options.verify = verify;
        options.group = group;
        options.revision = revision;
        options.convert_dtype = convert_dtype;
        const StateDict empty;
        const StateDict& state_dict = state.snapshot.model ? *state.snapshot.model : empty;
        const LoadCheckpointResult result =
            without_gil([&] { return load_checkpoint(handle, state_dict, path, options); });
        py::dict d;
        d["missing"] = keys_to_python(result.keys.missing);
        d["unexpected"] = keys_to_python(result.keys.unexpected);
        d["files"] = paths_to_python(result.files);
        return d;
      },
      py::arg("comm"), py::arg("state"), py::arg("path"), py::arg("strict"), py::arg("verify"), py::arg("group"),
      py::arg("revision"), py::arg("convert_dtype"));

  m.def(
      "verify",
      [](std::uintptr_t comm, const std::string& path) {
        const MPI_Comm handle = comm_from_address(comm);
        const VerifyReport report =
            without_gil([&] { return verify_container(handle, resolve_checkpoint_path(path)); });
        py::dict d;
        d["path"] = report.path.string();
        d["ok"] = report.ok();
        d["format_version"] = report.format_version;
        d["tensors"] = report.tensors;
        d["pieces"] = report.pieces;
        d["bytes_verified"] = report.bytes_verified;
        d["problems"] = py::cast(report.problems);
        return d;
      },
      py::arg("comm"), py::arg("path"));

  m.def(
      "inspect_container",
      [](const std::string& path) {
        return container_info_to_python(without_gil([&] { return inspect_container(path); }));
      },
      py::arg("path"));
  m.def(
      "inspect_safetensors",
      [](const std::string& path) {
        return safetensors_info_to_python(without_gil([&] { return inspect_safetensors(path); }));
      },
      py::arg("path"));
  m.def(
      "list_checkpoints",
      [](const std::string& root) {
        return entries_to_python(without_gil([&] { return list_checkpoints(root); }), checkpoint_entry_to_python);
      },
      py::arg("root"));
  m.def(
      "list_local_checkpoints",
      [](const std::string& local_dir) {
        return entries_to_python(without_gil([&] { return list_local_checkpoints(local_dir); }),
                                 local_checkpoint_entry_to_python);
      },
      py::arg("local_dir"));
}

}  // namespace ckptio::python
