// ckptio.PreemptionGuard's C++ side: the C++ guard installs the signal handlers (which only set
// a flag); should_stop and exit_after_save release the GIL while ranks agree.
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "ckptio/checkpoint_io.hpp"
#include "ckptio/preemption_guard.hpp"

namespace ckptio::python {

void bind_preemption(py::module_& m) {
  py::class_<PreemptionOptions>(m, "PreemptionOptions")
      .def(py::init<>())
      .def_readwrite("requeue_signal", &PreemptionOptions::requeue_signal)
      .def_readwrite("handle_sigterm", &PreemptionOptions::handle_sigterm)
      .def_readwrite("requeue", &PreemptionOptions::requeue)
      .def_readwrite("max_requeues", &PreemptionOptions::max_requeues)
      .def_readwrite("watch_walltime", &PreemptionOptions::watch_walltime)
      .def_readwrite("poll_seconds", &PreemptionOptions::poll_seconds)
      .def_readwrite("save_time_factor", &PreemptionOptions::save_time_factor)
      .def_readwrite("margin_seconds", &PreemptionOptions::margin_seconds)
      .def_readwrite("lead_seconds", &PreemptionOptions::lead_seconds)
      .def_readwrite("requeue_wait_seconds", &PreemptionOptions::requeue_wait_seconds)
      .def_readwrite("squeue", &PreemptionOptions::squeue)
      .def_readwrite("scontrol", &PreemptionOptions::scontrol)
      .def_readwrite("command_timeout_seconds", &PreemptionOptions::command_timeout_seconds);

  // Held by unique_ptr and never moved; keeps the Python CheckpointIO alive (keep_alive<1, 3>).
  py::class_<PreemptionGuard, std::unique_ptr<PreemptionGuard>>(m, "PreemptionGuard")
      .def(py::init([](std::uintptr_t comm, py::handle io, PreemptionOptions options) {
             const MPI_Comm handle = comm_from_address(comm);
             const CheckpointIO& cpp_io = checkpoint_io_of(io);
             py::gil_scoped_release release;
             return std::make_unique<PreemptionGuard>(handle, cpp_io, std::move(options));
           }),
           py::arg("comm"), py::arg("io"), py::arg("options"), py::keep_alive<1, 3>())
      .def(
          "should_stop",
          [](PreemptionGuard& self, std::int64_t global_step) {
            py::gil_scoped_release release;
            return self.should_stop(global_step);
          },
          py::arg("global_step"))
      .def("reason", [](const PreemptionGuard& self) { return std::string(to_string(self.reason())); })
      .def("requeue_due", &PreemptionGuard::requeue_due)
      .def("exit_after_save", [](PreemptionGuard& self) {
        py::gil_scoped_release release;
        self.exit_after_save();
      });
}

}  // namespace ckptio::python
