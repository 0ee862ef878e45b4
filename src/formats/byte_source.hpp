// Random-access bytes for the format parsers: a file read with pread, or a buffer in memory
// (tests and fuzz targets). Every read is bounds-checked against size().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ckptio::detail::formats {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  // Copies `count` bytes at `offset` into `out`. Throws FormatError (naming label()) when the
  // range goes past the end, IoError when the operating system fails.
  virtual void read(std::uint64_t offset, std::uint64_t count, void* out) const = 0;
  // The name used in error messages (the file's path).
  virtual const std::string& label() const = 0;

  // read() into a new buffer; the range is checked before anything is allocated.
  std::vector<std::uint8_t> read_vector(std::uint64_t offset, std::uint64_t count) const;
  // Throws FormatError("<label>: <what>: truncated ...") unless [offset, offset+count) fits.
  void require_range(std::uint64_t offset, std::uint64_t count, const char* what) const;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::span<const std::uint8_t> bytes, std::string label);
  std::uint64_t size() const override { return bytes_.size(); }
  void read(std::uint64_t offset, std::uint64_t count, void* out) const override;
  const std::string& label() const override { return label_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string label_;
};

class FileSource final : public ByteSource {
 public:
  // Throws IoError naming `path` when it cannot be opened.
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  std::uint64_t size() const override { return size_; }
  void read(std::uint64_t offset, std::uint64_t count, void* out) const override;
  const std::string& label() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace ckptio::detail::formats
