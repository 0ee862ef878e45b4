// The container file's layout and MPI-IO hints, from CheckpointOptions and the environment.
#pragma once

#include "ckptio/checkpoint_io.hpp"
#include "h5/container_writer.hpp"

namespace ckptio::detail {

// The file layout and MPI-IO hints asked for by the options and CKPTIO_MPIIO_HINTS.
h5::FileTuning file_tuning(const CheckpointOptions& options);

}  // namespace ckptio::detail
