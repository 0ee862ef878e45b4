#include "io/load_checks.hpp"

#include "ckptio/error.hpp"
#include "mpi/agree.hpp"

namespace ckptio::detail {

void check_load_request(const Comm& comm, std::string_view operation, const Snapshot& targets,
                        const LoadOptions& options) {
  run_agreed(comm, operation, [&] {
    check_checkpoint_io_load_options(options);
    check_writable_targets(targets, comm.rank());
  });
}

void check_checkpoint_io_load_options(const LoadOptions& options) {
  auto refuse = [](const char* field, const char* why) {
    throw UsageError(std::string("LoadOptions::") + field + " applies to load_checkpoint only; " + why);
  };
  if (!options.group.empty()) refuse("group", "CheckpointIO loads the groups its Snapshot holds");
  if (!options.revision.empty()) refuse("revision", "CheckpointIO loads its own checkpoints, not a Hugging Face repo");
  if (options.convert_dtype) refuse("convert_dtype", "CheckpointIO loads tensors in the dtype they were saved in");
}

void check_writable_targets(const StateDict& targets, const std::string& group, int rank) {
  for (const auto& [name, shard] : targets) {
    if (!shard.data.read_only()) continue;
    throw UsageError("tensor " + (group.empty() ? name : group + "/" + name) + " on rank " + std::to_string(rank) +
                     ": its shard is read-only (made from a pointer to const) and a load writes into it");
  }
}

void check_writable_targets(const Snapshot& targets, int rank) {
  for (const char* group : kGroupNames)
    if (const auto& dict = targets.group(group)) check_writable_targets(*dict, group, rank);
}

}  // namespace ckptio::detail
