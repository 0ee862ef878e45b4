// ckptio.CheckpointIO's C++ side. The C++ object cannot move, so it is held by pointer; close()
// destroys it (releasing the root's lock) before Python collects the wrapper.
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "ckptio/checkpoint_io.hpp"
#include "ckptio/error.hpp"
#include "load_result.hpp"
#include "snapshot_builder.hpp"

namespace ckptio::python {

namespace {

class PyCheckpointIO {
 public:
  PyCheckpointIO(std::uintptr_t comm, const std::string& root, CheckpointOptions options) {
    const MPI_Comm handle = comm_from_address(comm);
    py::gil_scoped_release release;
    io_ = std::make_unique<CheckpointIO>(handle, root, std::move(options));
  }

  CheckpointIO& io() {
    if (!io_) throw UsageError("this CheckpointIO is closed");
    return *io_;
  }

  // Collective: waits for a save in flight (rethrowing its error), then releases the lock.
  void close() {
    if (!io_) return;
    py::gil_scoped_release release;
    std::unique_ptr<CheckpointIO> io = std::move(io_);
    io->wait();
    io.reset();
  }
  bool closed() const { return !io_; }

 private:
  std::unique_ptr<CheckpointIO> io_;
};

LoadOptions load_options(bool strict, bool verify) {
  LoadOptions options;
  options.strict = strict;
  options.verify = verify;
  return options;
}

}  // namespace

void bind_checkpoint_io(py::module_& m) {
  py::class_<CheckpointOptions>(m, "CheckpointOptions")
      .def(py::init<>())
      .def_readwrite("keep_last", &CheckpointOptions::keep_last)
      .def_readwrite("lock_root", &CheckpointOptions::lock_root)
      .def_readwrite("max_staging_bytes", &CheckpointOptions::max_staging_bytes)
      .def_readwrite("staging_huge_pages", &CheckpointOptions::staging_huge_pages)
      .def_readwrite("mpi_io_hints", &CheckpointOptions::mpi_io_hints)
      .def_readwrite("alignment", &CheckpointOptions::alignment)
      .def_readwrite("direct_io", &CheckpointOptions::direct_io)
      .def_readwrite("pack_max_bytes", &CheckpointOptions::pack_max_bytes)
      .def_readwrite("export_safetensors", &CheckpointOptions::export_safetensors)
      .def_property(
          "local_dir", [](const CheckpointOptions& o) { return o.local_dir.string(); },
          [](CheckpointOptions& o, const std::string& dir) { o.local_dir = dir; })
      .def_readwrite("flush_every", &CheckpointOptions::flush_every)
      .def_readwrite("partner_copies", &CheckpointOptions::partner_copies)
      .def_readwrite("local_keep_last", &CheckpointOptions::local_keep_last)
      .def_property(
          "export_dtype",
          [](const CheckpointOptions& o) -> std::optional<std::string> {
            if (!o.export_dtype) return std::nullopt;
            return std::string(dtype_name(*o.export_dtype));
          },
          [](CheckpointOptions& o, std::optional<std::string> name) {
            if (!name) {
              o.export_dtype.reset();
              return;
            }
            const auto dtype = parse_dtype(*name);
            if (!dtype) throw UsageError("export_dtype: unknown dtype '" + *name + "'");
            o.export_dtype = *dtype;
          });

  py::class_<PyCheckpointIO>(m, "CheckpointIO")
      .def(py::init<std::uintptr_t, const std::string&, CheckpointOptions>(), py::arg("comm"), py::arg("root"),
           py::arg("options"))
      .def(
          "save",
          [](PyCheckpointIO& self, const SnapshotBuilder& snap) {
            CheckpointIO& io = self.io();
            py::gil_scoped_release release;
            return io.save(snap.snapshot).string();
          },
          py::arg("snapshot"))
      .def(
          "save_async",
          [](PyCheckpointIO& self, const SnapshotBuilder& snap) {
            CheckpointIO& io = self.io();
            py::gil_scoped_release release;
            return io.save_async(snap.snapshot).string();
          },
          py::arg("snapshot"))
      .def("wait",
           [](PyCheckpointIO& self) {
             CheckpointIO& io = self.io();
             py::gil_scoped_release release;
             io.wait();
           })
      .def("latest",
           [](PyCheckpointIO& self) -> std::optional<std::string> {
             CheckpointIO& io = self.io();
             py::gil_scoped_release release;
             const auto path = io.latest();
             if (!path) return std::nullopt;
             return path->string();
           })
      .def(
          "load",
          [](PyCheckpointIO& self, const std::string& path, const SnapshotBuilder& snap, bool strict, bool verify) {
            CheckpointIO& io = self.io();
            LoadResult result;
            {
              py::gil_scoped_release release;
              result = io.load(path, snap.snapshot, load_options(strict, verify));
            }
            return load_result_to_python(result);
          },
          py::arg("path"), py::arg("snapshot"), py::arg("strict"), py::arg("verify"))
      .def(
          "load_latest",
          [](PyCheckpointIO& self, const SnapshotBuilder& snap, bool strict, bool verify) -> py::object {
            CheckpointIO& io = self.io();
            std::optional<LoadResult> result;
            {
              py::gil_scoped_release release;
              result = io.load_latest(snap.snapshot, load_options(strict, verify));
            }
            if (!result) return py::none();
            return load_result_to_python(*result);
          },
          py::arg("snapshot"), py::arg("strict"), py::arg("verify"))
      .def(
          "reserve_staging",
          [](PyCheckpointIO& self, const SnapshotBuilder& snap) {
            CheckpointIO& io = self.io();
            py::gil_scoped_release release;
            io.reserve_staging(snap.snapshot);
          },
          py::arg("snapshot"))
      .def(
          "reserve_staging_bytes",
          [](PyCheckpointIO& self, std::uint64_t bytes) {
            CheckpointIO& io = self.io();
            py::gil_scoped_release release;
            io.reserve_staging(bytes);
          },
          py::arg("bytes"))
      .def("save_in_flight", [](PyCheckpointIO& self) { return self.io().save_in_flight(); })
      .def("in_flight_seconds", [](PyCheckpointIO& self) { return self.io().in_flight_seconds(); })
      .def("last_save_seconds", [](PyCheckpointIO& self) { return self.io().last_save_seconds(); })
      .def("recent_save_seconds", [](PyCheckpointIO& self) { return self.io().recent_save_seconds(); })
      .def("staging_bytes", [](PyCheckpointIO& self) { return self.io().staging_bytes(); })
      .def("root", [](PyCheckpointIO& self) { return self.io().root().string(); })
      .def("rank", [](PyCheckpointIO& self) { return self.io().rank(); })
      .def("world_size", [](PyCheckpointIO& self) { return self.io().world_size(); })
      .def("close", &PyCheckpointIO::close)
      .def("closed", &PyCheckpointIO::closed);
}

CheckpointIO& checkpoint_io_of(py::handle wrapper) { return wrapper.cast<PyCheckpointIO&>().io(); }

}  // namespace ckptio::python
