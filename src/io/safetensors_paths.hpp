// Which files make up a safetensors export given as a file, an index or a folder.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ckptio::detail {

// Whether the regular file at `path` starts with the HDF5 signature (false for anything
// else, a FIFO included, without blocking).
bool is_hdf5_file(const std::filesystem::path& path);
bool ends_with(const std::string& s, const std::string& suffix);

// The shard files an index names, in the index's folder. Every shard, resolved through its
// symlinks, must stay inside `confine` when given (a Hugging Face cache repo folder, which
// the index must stay in too), else inside the index's folder (or, for a snapshot folder of
// the cache given by its path, its repo folder). Throws FormatError / IoError.
std::vector<std::string> safetensors_files_of_index(const std::filesystem::path& index_path,
                                                    const std::filesystem::path* confine);

// A folder of an export: its index (model.safetensors.index.json when there are several),
// else its single .safetensors file (model.safetensors when there are several), confined
// as above.
std::vector<std::string> safetensors_files_of_folder(const std::filesystem::path& folder,
                                                     const std::filesystem::path* confine);

}  // namespace ckptio::detail
