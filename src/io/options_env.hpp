// CheckpointOptions and the environment, and the container file's tuning that follows from
// them. CKPTIO_DIRECT_IO, CKPTIO_MPIIO_HINTS and CKPTIO_PACK_MAX_BYTES fill only what the code left at its default
// (a value set in code wins); they are read once, by CheckpointIO's constructor, on rank 0,
// whose values every rank uses (a job has one setting; other ranks' values are ignored).
#pragma once

#include "ckptio/checkpoint_io.hpp"
#include "h5/container_writer.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

// Collective over comm: `options` with rank 0's CKPTIO_DIRECT_IO (0 or 1; used when
// options.direct_io is unset) and CKPTIO_MPIIO_HINTS ("key=value,key=value"; its keys are
// added where options.mpi_io_hints has none). Logs at info each default the environment
// changes. A malformed value is a UsageError on every rank.
CheckpointOptions with_environment(const Comm& comm, CheckpointOptions options);

// The file layout and MPI-IO hints asked for by `options` (after with_environment).
h5::FileTuning file_tuning(const CheckpointOptions& options);

}  // namespace ckptio::detail
