// How each ckptio dtype is stored in HDF5 (see docs/FORMAT.md).
#pragma once

#include "ckptio/dtype.hpp"
#include "h5/h5_handle.hpp"

namespace ckptio::detail::h5 {

// A new HDF5 datatype for `dtype`, used both as file and memory type (no conversion):
// F16 IEEE half; BF16 a 16-bit float with 8 exponent bits; F8_* as uint8 raw bits; BOOL an
// enum {FALSE=0, TRUE=1} over int8; the others the standard little-endian types.
Handle datatype_for(DType dtype);

}  // namespace ckptio::detail::h5
