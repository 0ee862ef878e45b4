// Which checkpoints of a root exist, in which order they are tried on load, and which are
// pruned after a save.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ckptio::detail {

// Committed checkpoint file names in the root, oldest first (by global_step, then epoch).
std::vector<std::string> committed_checkpoints(const std::filesystem::path& root);

// Names to try for load_latest: the one `latest` names first, then the older committed
// ones, newest first. Without `latest`, every committed one, newest first.
std::vector<std::string> load_order(const std::filesystem::path& root);

// Checkpoints to delete so that `keep_last` remain (0: none deleted). Never the one just
// committed, never the one `latest` names.
std::vector<std::filesystem::path> checkpoints_to_prune(const std::filesystem::path& root, int keep_last,
                                                        const std::string& just_committed);

// "*.h5.partial" files left by saves that did not finish.
std::vector<std::filesystem::path> stale_partials(const std::filesystem::path& root);

}  // namespace ckptio::detail
