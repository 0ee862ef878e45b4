// What an export may write over. An export replaces only what an earlier export wrote: never
// the checkpoint it reads, a file of a checkpoint root (a checkpoint, `latest`, the lock), a
// FIFO, a device or a folder, nor a file that is not safetensors.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ckptio::detail {

// Checks every file an export of `checkpoint` is about to write (`files`, and `index` when
// sharded). Throws UsageError "export: will not write <file>: <why>" for the first that it
// must not replace. Run on one rank, before anything is written.
void check_export_outputs(const std::filesystem::path& checkpoint, const std::vector<std::filesystem::path>& files,
                          const std::optional<std::filesystem::path>& index);

// Why the export must not replace or remove `path`; empty when nothing is there or when it
// is a regular file that looks like what an export writes (a safetensors file, or for
// `index`, a JSON object).
std::string export_output_problem(const std::filesystem::path& path, bool is_index);

}  // namespace ckptio::detail
