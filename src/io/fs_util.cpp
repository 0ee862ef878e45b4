#include "io/fs_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <regex>

#include "ckptio/error.hpp"
#include "core/regular_file.hpp"

namespace ckptio::detail {
namespace {

[[noreturn]] void throw_errno(const std::string& what, int err) {
  const std::string text = what + ": " + std::strerror(err) + (err == ENOSPC ? " (ENOSPC)" : "");
  throw IoError(text);
}

void fsync_fd_or_throw(int fd, const std::string& what) {
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(what, err);
  }
}

}  // namespace

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw_errno("open " + path.string() + " for fsync", errno);
  fsync_fd_or_throw(fd, "fsync " + path.string());
  ::close(fd);
}

void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open folder " + dir.string() + " for fsync", errno);
  fsync_fd_or_throw(fd, "fsync folder " + dir.string());
  ::close(fd);
}

void rename_path(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("rename " + from.string() + " to " + to.string(), errno);
}

void create_empty_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno("cannot create " + path.string(), errno);
  ::close(fd);
}

void remove_file_if_exists(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("remove " + path.string(), errno);
}

void atomic_write_file(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  remove_file_if_exists(tmp);
  // O_EXCL|O_NOFOLLOW: never write through a symlink planted at the temporary name.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno("create " + tmp.string(), errno);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw_errno("write " + tmp.string(), err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw_errno("fsync " + tmp.string(), err);
  }
  ::close(fd);
  // rename() replaces a symlink at `path` itself, never the file it points to.
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno("rename " + tmp.string() + " to " + path.string(), err);
  }
  fsync_directory(path.parent_path());
}

bool reserve_file_space(const std::filesystem::path& path, std::uint64_t bytes) {
  if (bytes == 0) return true;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw IoError("cannot open " + path.string() + " to reserve space: " + std::strerror(errno));
  const int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes));
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  if (rc == 0) return true;
  if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) return false;
  throw IoError("cannot reserve " + std::to_string(bytes) + " bytes for " + path.string() + ": " + std::strerror(err) +
                (err == ENOSPC   ? " (ENOSPC)"
                 : err == EDQUOT ? " (EDQUOT)"
                                 : ""));
}

void release_reserved_space(const std::filesystem::path& path, std::uint64_t reserved_bytes) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < reserved_bytes)
    (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size,
                      static_cast<off_t>(reserved_bytes - static_cast<std::uint64_t>(st.st_size)));
  ::close(fd);
}

std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes,
                                           const std::string& what) {
  auto file = open_regular_file_if_exists(path, what, Symlinks::Refuse);
  if (!file) return std::nullopt;
  return read_regular_file(*file, path, max_bytes);
}

bool has_hdf5_signature(const std::filesystem::path& path) {
  try {
    RegularFile file = open_regular_file(path, "file");
    char signature[8] = {};
    ssize_t n = 0;
    do {
      n = ::pread(file.fd.get(), signature, sizeof signature, 0);
    } while (n < 0 && errno == EINTR);
    return n == 8 && std::memcmp(signature, "\x89HDF\r\n\x1a\n", 8) == 0;
  } catch (const Error&) {
    return false;
  }
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string iso_time(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string iso_time_now() { return iso_time(static_cast<std::int64_t>(std::time(nullptr))); }

std::optional<CheckpointName> parse_checkpoint_name(const std::string& file_name) {
  static const std::regex pattern(R"(epoch(\d{1,18})-global_step(\d{1,18})\.h5)");
  std::smatch m;
  if (!std::regex_match(file_name, m, pattern)) return std::nullopt;
  return CheckpointName{std::stoll(m[1].str()), std::stoll(m[2].str())};
}

}  // namespace ckptio::detail
