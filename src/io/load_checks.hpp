// Checks every load makes before it reads anything: the options apply to the call, and the
// memory it is asked to fill may be written.
#pragma once

#include <string>
#include <string_view>

#include "ckptio/load_options.hpp"
#include "ckptio/snapshot.hpp"
#include "ckptio/state_dict.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

// Collective over comm: CheckpointIO::load's and load_latest's checks of `options` and
// `targets` (below), agreed, so that a problem on one rank is the same UsageError on all,
// as "<operation>: <problem>".
void check_load_request(const Comm& comm, std::string_view operation, const Snapshot& targets,
                        const LoadOptions& options);

// The checks themselves are local to the rank.

// Throws UsageError when `options` sets a field that only load_checkpoint uses (group,
// revision, convert_dtype): CheckpointIO::load and load_latest would otherwise ignore it.
void check_checkpoint_io_load_options(const LoadOptions& options);

// Throws UsageError naming the first tensor (as "<group>/<name>", or "<name>" when `group`
// is empty) whose shard is read-only: made from a pointer to const, it cannot be loaded into.
void check_writable_targets(const StateDict& targets, const std::string& group, int rank);
void check_writable_targets(const Snapshot& targets, int rank);

}  // namespace ckptio::detail
