#include "core/regular_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ckptio/error.hpp"

namespace ckptio::detail {

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

std::string file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

namespace {

[[noreturn]] void refuse_type(const std::filesystem::path& path, const std::string& what, mode_t mode) {
  const std::string type = file_type_name(mode);
  throw IoError(what + " " + path.string() +
                (type.rfind("a ", 0) == 0 ? " is " + type + ", not a regular file" : " is " + type));
}

// nullopt when the path does not exist.
std::optional<RegularFile> open_checked(const std::filesystem::path& path, const std::string& what, Symlinks symlinks,
                                        bool missing_is_error) {
  const int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (symlinks == Symlinks::Refuse ? O_NOFOLLOW : 0);
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT && !missing_is_error) return std::nullopt;
    struct stat lst {};
    if (symlinks == Symlinks::Refuse && err == ELOOP && ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
      throw IoError(what + " " + path.string() + " is a symbolic link, which ckptio does not follow here");
    throw IoError("cannot open " + what + " " + path.string() + ": " + std::strerror(err));
  }
  RegularFile file{FileDescriptor(fd), 0};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError("cannot stat " + what + " " + path.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) refuse_type(path, what, st.st_mode);
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  file.size = static_cast<std::uint64_t>(st.st_size);
  return file;
}

}  // namespace

RegularFile open_regular_file(const std::filesystem::path& path, const std::string& what, Symlinks symlinks) {
  return std::move(*open_checked(path, what, symlinks, true));
}

std::optional<RegularFile> open_regular_file_if_exists(const std::filesystem::path& path, const std::string& what,
                                                       Symlinks symlinks) {
  return open_checked(path, what, symlinks, false);
}

void require_regular_file(const std::filesystem::path& path, const std::string& what, Symlinks symlinks) {
  // stat, not open: opening a FIFO for a check would block or disturb a writer on it.
  struct stat st {};
  const int rc = symlinks == Symlinks::Refuse ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
  if (rc != 0) throw IoError("cannot open " + what + " " + path.string() + ": " + std::strerror(errno));
  if (S_ISLNK(st.st_mode))
    throw IoError(what + " " + path.string() + " is a symbolic link, which ckptio does not follow here");
  if (!S_ISREG(st.st_mode)) refuse_type(path, what, st.st_mode);
}

std::string read_regular_file(RegularFile& file, const std::filesystem::path& path, std::size_t max_bytes) {
  if (file.size > max_bytes)
    throw FormatError(path.string() + " is " + std::to_string(file.size) + " bytes, larger than the " +
                      std::to_string(max_bytes) + " bytes expected of it");
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(file.fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot read " + path.string() + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes)
      throw FormatError(path.string() + " is larger than the " + std::to_string(max_bytes) + " bytes expected of it");
  }
  return out;
}

}  // namespace ckptio::detail
