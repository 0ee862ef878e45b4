// The text MPI gives for an error code: the one place that calls MPI_Error_string.
#pragma once

#include <string>

namespace ckptio::detail {

std::string mpi_error_string(int code);

}  // namespace ckptio::detail
