// The pieces of the ckptio._ckptio extension module, one function per binding file.
#pragma once

#include <mpi.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace ckptio {
class CheckpointIO;
}

namespace ckptio::python {

namespace py = pybind11;

// The MPI_Comm handle behind an mpi4py communicator, given as the address that
// `MPI._addressof(comm)` returns (the handle itself lives in the Python object).
MPI_Comm comm_from_address(std::uintptr_t address);

// The C++ CheckpointIO inside a ckptio._ckptio.CheckpointIO (UsageError once closed).
CheckpointIO& checkpoint_io_of(py::handle wrapper);

void bind_errors(py::module_& m);
void bind_snapshot(py::module_& m);
void bind_checkpoint_io(py::module_& m);
void bind_tools(py::module_& m);
void bind_preemption(py::module_& m);

}  // namespace ckptio::python
