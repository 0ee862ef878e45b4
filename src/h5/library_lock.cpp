#include "h5/library_lock.hpp"

#include <hdf5.h>

namespace ckptio::detail::h5 {

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

void initialise_library() { H5open(); }

}  // namespace ckptio::detail::h5
