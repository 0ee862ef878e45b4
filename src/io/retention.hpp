// Which checkpoints of a root exist, in which order they are tried on load, and which are
// pruned after a save.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/error.hpp"

namespace ckptio::detail {

// Why `root`/`name` is not a checkpoint of the root: "it does not exist", "it is a symbolic
// link, ..." (checkpoints in a root are regular files in it; a link is never followed), "it
// is a FIFO, ...", "it is not an HDF5 file"; empty when it is one. Reads 8 bytes at most,
// and never blocks on a FIFO.
std::string root_entry_problem(const std::filesystem::path& root, const std::string& name);

// Committed checkpoint file names in the root, oldest first (by global_step, then epoch):
// the regular HDF5 files named like checkpoints. Others named so (a symlink, a folder, a
// text file) are never counted, each with a warning.
std::vector<std::string> committed_checkpoints(const std::filesystem::path& root);

// Names to try for load_latest: the one `latest` names first, then the older committed
// ones, newest first. Without `latest`, every committed one, newest first. A `latest` that
// is malformed, or names something that is not a committed checkpoint, gives every committed
// one, newest first, with a warning; with none to fall back to, that problem is thrown.
std::vector<std::string> load_order(const std::filesystem::path& root);

// The file that CheckpointIO of `root` loads for `path`: as given when something exists
// there, else `root`/`path`; a folder through its `latest` (resolve_checkpoint_path). A
// checkpoint reached through the root (by a name relative to it, or through `latest`) must
// pass root_entry_problem (FormatError otherwise; IoError when it does not exist).
std::filesystem::path resolve_load_path(const std::filesystem::path& root, const std::filesystem::path& path);

// Whether load_latest skips a checkpoint that failed with this kind of error for the next
// older one: damage (format, integrity, I/O, and unexpected errors of the reader), not a
// state dict that does not fit the file (usage, mismatch) or a locked root.
bool falls_back_on(ErrorKind kind);

// Checkpoints to delete so that `keep_last` remain (0: none deleted). Never the one just
// committed, never the one `latest` names.
std::vector<std::filesystem::path> checkpoints_to_prune(const std::filesystem::path& root, int keep_last,
                                                        const std::string& just_committed);

// "*.h5.partial" files left by saves that did not finish.
std::vector<std::filesystem::path> stale_partials(const std::filesystem::path& root);

}  // namespace ckptio::detail
