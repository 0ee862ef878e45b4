// ckptio._ckptio: the C++ library's public API for the pure-Python package `ckptio`.
// Every call that does I/O or waits on other ranks releases the GIL.
#include "bindings.hpp"

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/dtype.hpp"
#include "ckptio/error.hpp"
#include "ckptio/version.hpp"

namespace ckptio::python {

MPI_Comm comm_from_address(std::uintptr_t address) {
  if (address == 0) throw UsageError("communicator: a null address (pass an mpi4py communicator)");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw UsageError("MPI is not initialized: import mpi4py's MPI first");
  return *reinterpret_cast<const MPI_Comm*>(address);
}

}  // namespace ckptio::python

PYBIND11_MODULE(_ckptio, m) {
  namespace py = pybind11;
  using namespace ckptio::python;
  m.doc() = "C++ core of the ckptio package; use the `ckptio` package, not this module.";
  m.attr("__version__") = CKPTIO_VERSION;
  py::list dtypes;
  for (ckptio::DType dtype : ckptio::kAllDTypes) dtypes.append(std::string(ckptio::dtype_name(dtype)));
  m.attr("DTYPES") = dtypes;
  m.def(
      "dtype_size",
      [](const std::string& name) {
        const auto dtype = ckptio::parse_dtype(name);
        if (!dtype) throw ckptio::UsageError("unknown dtype '" + name + "'");
        return ckptio::dtype_size(*dtype);
      },
      py::arg("dtype"), "Bytes of one element of a dtype named as in safetensors (\"F32\", \"BF16\", ...).");
  m.def(
      "checkpoint_file_name",
      [](std::int64_t epoch, std::int64_t global_step) { return ckptio::checkpoint_file_name(epoch, global_step); },
      py::arg("epoch"), py::arg("global_step"));
  bind_errors(m);
  bind_snapshot(m);
  bind_checkpoint_io(m);
  bind_tools(m);
  bind_preemption(m);
}
