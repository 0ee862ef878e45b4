#include "io/load_checks.hpp"

#include "ckptio/error.hpp"
#include "mpi/agree.hpp"

namespace ckptio::detail {

void check_load_request(const Comm& comm, std::string_view operation, const Snapshot& targets,
                        const LoadOptions& options) {
  run_agreed(comm, operation, [&] { check_checkpoint_io_load_options(options); });
}

void check_checkpoint_io_load_options(const LoadOptions& options) {
  auto refuse = [](const char* field, const char* why) {
    throw UsageError(std::string("LoadOptions::") + field + " applies to load_checkpoint only; " + why);
  };
  if (!options.group.empty()) refuse("group", "CheckpointIO loads the groups its Snapshot holds");
  if (!options.revision.empty()) refuse("revision", "CheckpointIO loads its own checkpoints, not a Hugging Face repo");
  if (options.convert_dtype) refuse("convert_dtype", "CheckpointIO loads tensors in the dtype they were saved in");
}

}  // namespace ckptio::detail
