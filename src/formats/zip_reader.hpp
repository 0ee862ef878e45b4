// A reader for the zip archives that torch.save writes: stored (uncompressed) entries,
// ZIP64 when needed, no encryption, one disk. Every length field is checked against the
// archive's size before it is used, and entry names that could escape a folder ("..",
// absolute paths, backslashes) are refused.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/byte_source.hpp"

namespace ckptio::detail::formats {

struct ZipEntry {
  std::string name;
  std::uint64_t data_offset = 0;  // where the entry's bytes start in the archive
  std::uint64_t size = 0;         // stored size == uncompressed size
  std::uint32_t crc32 = 0;
};

class ZipReader {
 public:
  // Reads and validates the central directory of `source`, which must outlive the reader.
  // Throws FormatError naming the file for anything it cannot accept.
  explicit ZipReader(const ByteSource& source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when there is no entry of that name.
  const ZipEntry* find(const std::string& name) const;
  // The whole entry, its CRC-32 checked. The size was checked against the archive's size.
  std::vector<std::uint8_t> read_entry(const ZipEntry& entry) const;
  const ByteSource& source() const { return source_; }

 private:
  const ByteSource& source_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// True when `bytes` start like a zip archive (a local file header).
bool looks_like_zip(const ByteSource& source);

// CRC-32 (the zip polynomial) of `count` bytes.
std::uint32_t crc32(const std::uint8_t* data, std::size_t count, std::uint32_t crc = 0);

}  // namespace ckptio::detail::formats
