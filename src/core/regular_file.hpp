// Opening a file that may be hostile: a FIFO, a device or a socket in its place must not
// block the open or a read forever, and a symlink is followed only where that is allowed.
// Every file ckptio reads goes through open_regular_file (HDF5 opens containers itself,
// after the same check on the path).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace ckptio::detail {

// An open file descriptor, closed on destruction.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

enum class Symlinks { Follow, Refuse };

struct RegularFile {
  FileDescriptor fd;
  std::uint64_t size = 0;
};

// "a FIFO", "a folder", "a socket", "a character device", "a block device", "a symbolic
// link" or "not a regular file".
std::string file_type_name(mode_t mode);

// Opens `path` read-only with O_NONBLOCK (so that a FIFO cannot block the open), checks
// with fstat that it is a regular file, and clears O_NONBLOCK again. `what` names the file's
// role in messages ("checkpoint", "lock file", ...). Throws IoError "cannot open <what>
// <path>: <reason>" when it is missing or unreadable, "<what> <path> is a FIFO, not a
// regular file" for other file types, "<what> <path> is a symbolic link, which ckptio does
// not follow here" with Symlinks::Refuse.
RegularFile open_regular_file(const std::filesystem::path& path, const std::string& what,
                              Symlinks symlinks = Symlinks::Follow);
// The same, but nullopt when nothing exists at `path`.
std::optional<RegularFile> open_regular_file_if_exists(const std::filesystem::path& path, const std::string& what,
                                                       Symlinks symlinks = Symlinks::Follow);

// Throws IoError as open_regular_file does unless `path` is (or, with Symlinks::Follow,
// leads to) a regular file; for code that must hand the path to a library (HDF5).
void require_regular_file(const std::filesystem::path& path, const std::string& what,
                          Symlinks symlinks = Symlinks::Follow);

// Reads all of a small regular file (at most `max_bytes`, else FormatError naming it).
std::string read_regular_file(RegularFile& file, const std::filesystem::path& path, std::size_t max_bytes);

}  // namespace ckptio::detail
