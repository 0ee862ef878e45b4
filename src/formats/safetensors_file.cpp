#include "formats/safetensors_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "ckptio/error.hpp"
#include "core/regular_file.hpp"

namespace ckptio::detail {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

void write_all(int fd, const void* data, std::size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write " + path + ": " + errno_text(errno));
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) {
  // O_NONBLOCK and a type check first: a FIFO in place of the file must not block us.
  RegularFile file = open_regular_file(path, "safetensors file");
  size_ = file.size;
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
    if (p == MAP_FAILED) throw IoError("cannot map " + path.string() + ": " + errno_text(errno));
    data_ = static_cast<const unsigned char*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path), map_(path) {
  // Only the header's pages are touched: the parser never looks past 8 + N.
  const std::uint64_t n = map_.size() >= 8 ? read_le64(map_.data()) : 0;
  const std::uint64_t visible = std::min<std::uint64_t>(map_.size(), n <= kSafetensorsMaxHeaderBytes ? 8 + n : 8);
  header_ = parse_safetensors_header(path.string(), map_.data(), static_cast<std::size_t>(visible), map_.size());
}

void write_safetensors_file(const std::filesystem::path& path, const std::vector<SafetensorsWriteTensor>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  std::unordered_map<std::string, const void*> data;
  for (const auto& t : tensors) {
    entries.push_back(t.entry);
    data[t.entry.name] = t.data;
  }
  const SerializedHeader header = serialize_safetensors_header(std::move(entries), metadata);
  const std::filesystem::path temp = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError("cannot create " + temp.string() + ": " + errno_text(errno));
  bool open = true;
  try {
    write_all(fd, header.bytes.data(), header.bytes.size(), temp.string());
    for (const auto& t : header.tensors) write_all(fd, data[t.name], t.bytes(), temp.string());
    if (::fsync(fd) != 0) throw IoError("cannot fsync " + temp.string() + ": " + errno_text(errno));
    open = false;
    if (::close(fd) != 0) throw IoError("cannot close " + temp.string() + ": " + errno_text(errno));
  } catch (...) {
    if (open) ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw IoError("cannot rename " + temp.string() + " to " + path.string() + ": " + errno_text(err));
  }
}

}  // namespace ckptio::detail
