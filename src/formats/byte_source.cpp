#include "formats/byte_source.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ckptio/error.hpp"
#include "core/regular_file.hpp"

namespace ckptio::detail::formats {

void ByteSource::require_range(std::uint64_t offset, std::uint64_t count, const char* what) const {
  if (offset > size() || count > size() - offset) {
    throw FormatError(label() + ": truncated file: " + what + " needs bytes [" + std::to_string(offset) + ", " +
                      std::to_string(offset) + "+" + std::to_string(count) + ") but the file has " +
                      std::to_string(size()) + " bytes");
  }
}

std::vector<std::uint8_t> ByteSource::read_vector(std::uint64_t offset, std::uint64_t count) const {
  require_range(offset, count, "a read");
  std::vector<std::uint8_t> out(static_cast<std::size_t>(count));
  if (count > 0) read(offset, count, out.data());
  return out;
}

MemorySource::MemorySource(std::span<const std::uint8_t> bytes, std::string label)
    : bytes_(bytes), label_(std::move(label)) {}

void MemorySource::read(std::uint64_t offset, std::uint64_t count, void* out) const {
  require_range(offset, count, "a read");
  if (count > 0) std::memcpy(out, bytes_.data() + offset, static_cast<std::size_t>(count));
}

FileSource::FileSource(const std::string& path) : path_(path) {
  // O_NONBLOCK and a type check first: a FIFO in place of the file must not block us.
  RegularFile file = open_regular_file(path, "file");
  size_ = file.size;
  fd_ = file.fd.release();
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read(std::uint64_t offset, std::uint64_t count, void* out) const {
  require_range(offset, count, "a read");
  auto* dst = static_cast<char*>(out);
  while (count > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(count, 1ULL << 30));
    const ssize_t got = ::pread(fd_, dst, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot read " + path_ + ": " + std::strerror(errno));
    }
    if (got == 0) throw FormatError(path_ + ": truncated file: the file shrank while it was read");
    dst += got;
    offset += static_cast<std::uint64_t>(got);
    count -= static_cast<std::uint64_t>(got);
  }
}

}  // namespace ckptio::detail::formats
