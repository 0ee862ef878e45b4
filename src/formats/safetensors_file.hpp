// A safetensors file on disk: a read-only memory map with its validated header, and the
// writer (temporary file + rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "formats/safetensors_header.hpp"

namespace ckptio::detail {

// A read-only memory map of a whole file. Only the pages that are touched are read.
class MappedFile {
 public:
  MappedFile() = default;
  // Throws IoError when the file cannot be opened or mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  std::uint64_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header (the data section is not read).
  // Throws IoError / FormatError naming the file.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  std::uint64_t file_size() const { return map_.size(); }
  // The stored bytes of a tensor of this file's header.
  const unsigned char* data(const SafetensorsTensor& tensor) const {
    return map_.data() + header_.data_start() + tensor.begin;
  }

 private:
  std::filesystem::path path_;
  MappedFile map_;
  SafetensorsHeader header_;
};

// A tensor to write: its entry and its row-major bytes.
struct SafetensorsWriteTensor {
  SafetensorsEntry entry;
  const void* data = nullptr;
};

// Writes a safetensors file with the reference writer's bytes: into a temporary file in the
// same folder, fsync'ed, then renamed over `path`. Throws IoError / UsageError.
void write_safetensors_file(const std::filesystem::path& path, const std::vector<SafetensorsWriteTensor>& tensors,
                            const std::map<std::string, std::string>& metadata);

}  // namespace ckptio::detail
