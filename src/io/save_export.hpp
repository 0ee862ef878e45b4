// Export at save time (CheckpointOptions::export_safetensors): the safetensors file that
// sits beside each container, written before the container is committed and pruned with it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

// "epoch{E}-global_step{G}.<group>.safetensors".
std::string save_export_name(std::int64_t epoch, std::int64_t global_step, const std::string& group);

// Collective over comm: exports `group` of the closed container `partial` to `out` (written
// as out.partial and renamed into place). Throws the same error on every rank.
void export_at_save(const Comm& comm, const std::filesystem::path& partial, const std::string& group,
                    const std::filesystem::path& out, const std::optional<DType>& dtype);

// The exports beside the checkpoint file `container` ("<stem>.*.safetensors"), and exports
// in `root` whose checkpoint no longer exists (left by a save that crashed before its commit).
std::vector<std::filesystem::path> exports_to_remove(const std::filesystem::path& root,
                                                     const std::vector<std::filesystem::path>& pruned);

}  // namespace ckptio::detail
