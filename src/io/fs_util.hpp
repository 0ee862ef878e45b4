// POSIX file-system helpers for the commit protocol: fsync, atomic replace, names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace ckptio::detail {

// fsync a file's data and metadata; throws IoError.
void fsync_path(const std::filesystem::path& path);
// fsync a directory so that renames and creations in it are durable; throws IoError.
void fsync_directory(const std::filesystem::path& dir);
// Writes `content` to `path` atomically: a temporary file in the same folder, fsync, rename
// over `path`, fsync of the folder. Never follows a symlink at `path`. Throws IoError.
void atomic_write_file(const std::filesystem::path& path, const std::string& content);
// Renames; throws IoError naming both paths.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);
// Creates `path` as an empty regular file (O_CREAT | O_EXCL | O_NOFOLLOW), so that a
// refusal of the file system (a read-only or immutable folder) is reported with its errno
// ("Operation not permitted") rather than MPI-IO's "MPI_ERR_OTHER: known error not in list".
// Throws IoError naming the file.
void create_empty_file(const std::filesystem::path& path);
// Removes a file if it exists (a symlink itself, never its target); throws IoError on other errors.
void remove_file_if_exists(const std::filesystem::path& path);
// Reserves disk space for the first `bytes` bytes of an existing regular file (Linux
// fallocate, keeping the file size), so that a full disk is found before any data is
// written. Returns false when the file system cannot reserve space (not supported); throws
// IoError naming ENOSPC (or the error) when it can but the space is not there.
bool reserve_file_space(const std::filesystem::path& path, std::uint64_t bytes);
// Gives back space reserved past the end of the file (best effort, never throws).
void release_reserved_space(const std::filesystem::path& path, std::uint64_t reserved_bytes) noexcept;
// Reads a small regular file (at most `max_bytes`, else FormatError); nullopt when it does
// not exist. Never follows a symlink and never blocks on a FIFO (IoError naming `what` and
// the path for anything but a regular file).
std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes,
                                           const std::string& what = "file");
// Whether `path` is a regular file (symlinks followed) that starts with the HDF5 signature;
// false for anything else, without blocking on a FIFO.
bool has_hdf5_signature(const std::filesystem::path& path);

std::string host_name();
// Now as ISO 8601 UTC ("2026-11-22T08:00:00Z").
std::string iso_time_now();
std::string iso_time(std::int64_t unix_seconds);

// Parses "epoch{E}-global_step{G}.h5"; nullopt for any other name.
struct CheckpointName {
  std::int64_t epoch;
  std::int64_t global_step;
};
std::optional<CheckpointName> parse_checkpoint_name(const std::string& file_name);

}  // namespace ckptio::detail
