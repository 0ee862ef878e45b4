// Debian's parallel HDF5 is built without thread safety: no two HDF5 calls may run at the
// same time in one process. Every ckptio operation that calls HDF5 holds this lock for its
// whole duration (an asynchronous save holds it on its I/O thread), so a synchronous call
// waits for an in-flight background save instead of racing it. Recursive: an operation that
// holds it may call another that takes it (a save exporting safetensors reads its container).
#pragma once

#include <mutex>

namespace ckptio::detail::h5 {

std::recursive_mutex& library_mutex();

// Initialises the HDF5 library now (H5open). Called before ckptio registers its own
// MPI_Finalize hook, so that HDF5's hook is registered first and therefore runs last.
void initialise_library();

}  // namespace ckptio::detail::h5
