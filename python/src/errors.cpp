// ckptio::Error and its subclasses as Python exceptions: ckptio.Error, ckptio.UsageError, ...
// with the C++ message. The C++ library already agrees errors across ranks, so every rank
// raises the same Python exception.
#include <array>

#include "bindings.hpp"
#include "ckptio/error.hpp"

namespace ckptio::python {

namespace {

// Indexed by ErrorKind; filled once at import, alive as long as the module.
std::array<PyObject*, 7> g_exception_types{};

}  // namespace

void bind_errors(py::module_& m) {
  static py::exception<Error> base(m, "Error");
  base.doc() = "Every error ckptio raises; the same on every rank of a collective call.";
  g_exception_types.fill(base.ptr());
  const auto subclass = [&](ErrorKind kind, const char* name, const char* doc) {
    py::object type = py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc((std::string("ckptio._ckptio.") + name).c_str(), doc, base.ptr(), nullptr));
    if (!type) throw py::error_already_set();
    m.attr(name) = type;
    g_exception_types[static_cast<int>(kind)] = type.release().ptr();  // kept for the process's life
  };
  subclass(ErrorKind::Usage, "UsageError", "The API was used wrongly: a bad argument, name or call order.");
  subclass(ErrorKind::Mismatch, "MismatchError",
           "The tensors or state disagree with the file or across ranks (dtype, shape, missing keys).");
  subclass(ErrorKind::Format, "FormatError", "A file is not a valid container, safetensors or .pt file.");
  subclass(ErrorKind::Io, "IoError", "The operating system or MPI-IO failed (open, write, ENOSPC, rename, ...).");
  subclass(ErrorKind::Integrity, "IntegrityError", "A checksum or completeness check failed.");
  subclass(ErrorKind::Locked, "LockedError", "Another job holds the checkpoint root's lock.");

  py::register_exception_translator([](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      const auto index = static_cast<std::size_t>(e.kind());
      PyObject* type = index < g_exception_types.size() ? g_exception_types[index] : g_exception_types[0];
      PyErr_SetString(type, e.what());
    }
  });
}

}  // namespace ckptio::python
