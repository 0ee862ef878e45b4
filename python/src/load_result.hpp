// Results of C++ calls as plain Python objects (dicts, lists, bytes, str), which the
// pure-Python package wraps in its result classes.
#pragma once

#include "bindings.hpp"
#include "ckptio/load_checkpoint.hpp"
#include "ckptio/snapshot.hpp"

namespace ckptio::python {

// {"group", "name"} pairs as a list of (group, name) tuples.
py::list keys_to_python(const std::vector<KeyReport::Key>& keys);
// The running state's fields added to `out` (epoch, step, global_step, then lr_scheduler,
// sampler and extras as JSON text).
void add_running_state(py::dict& out, const RunningState& running);
// A LoadResult as a dict; the JSON fields of the running state as JSON text.
py::dict load_result_to_python(const LoadResult& result);

}  // namespace ckptio::python
