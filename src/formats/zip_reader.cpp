#include "formats/zip_reader.hpp"

#include <algorithm>
#include <array>

#include "ckptio/error.hpp"

namespace ckptio::detail::formats {
namespace {

constexpr std::uint32_t kLocalHeaderSig = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kZip64EndSig = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kCentralHeaderSize = 46;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kZip64EndSize = 56;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint64_t kMaxEntries = 10'000'000;

std::uint16_t u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t u64(const std::uint8_t* p) { return u32(p) | (static_cast<std::uint64_t>(u32(p + 4)) << 32); }

[[noreturn]] void fail(const ByteSource& source, const std::string& what) {
  throw FormatError(source.label() + ": not a valid .pt zip archive: " + what);
}

// Names that could escape the folder they are extracted to are refused outright.
void check_entry_name(const ByteSource& source, const std::string& name) {
  const auto bad = [&](const char* why) {
    throw FormatError(source.label() + ": zip entry name '" + name + "' is not allowed (" + why + ")");
  };
  if (name.empty()) bad("empty");
  if (name.find('\0') != std::string::npos) bad("contains a NUL byte");
  if (name.find('\\') != std::string::npos) bad("contains a backslash");
  if (name.front() == '/') bad("absolute path");
  if (name.size() >= 2 && name[1] == ':') bad("absolute path");
  std::size_t begin = 0;
  while (begin <= name.size()) {
    const std::size_t end = std::min(name.find('/', begin), name.size());
    if (name.compare(begin, end - begin, "..") == 0) bad("contains '..'");
    begin = end + 1;
  }
}

struct EndRecord {
  std::uint64_t entries = 0;
  std::uint64_t cd_size = 0;
  std::uint64_t cd_offset = 0;
  std::uint64_t end_offset = 0;  // where the (ZIP64) end record starts: the directory ends before it
};

EndRecord read_end_record(const ByteSource& source) {
  const std::uint64_t size = source.size();
  if (size < kEndSize) fail(source, "the file is too small (" + std::to_string(size) + " bytes)");
  // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
  const std::uint64_t window = std::min<std::uint64_t>(size, kEndSize + 0xFFFF);
  const std::vector<std::uint8_t> tail = source.read_vector(size - window, window);
  std::uint64_t found = UINT64_MAX;
  for (std::uint64_t i = window - kEndSize + 1; i-- > 0;) {
    if (u32(&tail[i]) == kEndSig && i + kEndSize + u16(&tail[i + 20]) == window) {
      found = i;
      break;
    }
  }
  if (found == UINT64_MAX) fail(source, "no end of central directory record (truncated or not a zip file)");
  const std::uint8_t* e = &tail[found];
  EndRecord record;
  record.end_offset = size - window + found;
  if (u16(e + 4) != 0 || u16(e + 6) != 0) fail(source, "multi-disk archives are not supported");
  record.entries = u16(e + 10);
  record.cd_size = u32(e + 12);
  record.cd_offset = u32(e + 16);
  if (u16(e + 8) != u16(e + 10)) fail(source, "multi-disk archives are not supported");

  const bool zip64 = record.entries == 0xFFFF || record.cd_size == 0xFFFFFFFF || record.cd_offset == 0xFFFFFFFF;
  if (record.end_offset >= kZip64LocatorSize) {
    std::array<std::uint8_t, kZip64LocatorSize> loc{};
    source.read(record.end_offset - kZip64LocatorSize, kZip64LocatorSize, loc.data());
    if (u32(loc.data()) == kZip64LocatorSig) {
      const std::uint64_t z64_offset = u64(loc.data() + 8);
      if (z64_offset > record.end_offset - kZip64LocatorSize ||
          record.end_offset - kZip64LocatorSize - z64_offset < kZip64EndSize) {
        fail(source, "the ZIP64 end record offset is out of range");
      }
      std::array<std::uint8_t, kZip64EndSize> z{};
      source.read(z64_offset, kZip64EndSize, z.data());
      if (u32(z.data()) != kZip64EndSig) fail(source, "the ZIP64 end record signature is wrong");
      if (u32(z.data() + 16) != 0 || u32(z.data() + 20) != 0) fail(source, "multi-disk archives are not supported");
      record.entries = u64(z.data() + 32);
      record.cd_size = u64(z.data() + 40);
      record.cd_offset = u64(z.data() + 48);
      record.end_offset = z64_offset;
    } else if (zip64) {
      fail(source, "the end record asks for ZIP64 but there is no ZIP64 locator");
    }
  } else if (zip64) {
    fail(source, "the end record asks for ZIP64 but there is no ZIP64 locator");
  }
  if (record.cd_offset > record.end_offset || record.cd_size != record.end_offset - record.cd_offset) {
    fail(source, "the central directory (offset " + std::to_string(record.cd_offset) + ", size " +
                     std::to_string(record.cd_size) + ") does not end where the end record starts (" +
                     std::to_string(record.end_offset) + ")");
  }
  if (record.entries > record.cd_size / kCentralHeaderSize || record.entries > kMaxEntries) {
    fail(source, "the end record declares " + std::to_string(record.entries) +
                     " entries, more than the central directory can hold");
  }
  return record;
}

}  // namespace

bool looks_like_zip(const ByteSource& source) {
  if (source.size() < 4) return false;
  std::array<std::uint8_t, 4> head{};
  source.read(0, 4, head.data());
  return u32(head.data()) == kLocalHeaderSig;
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t count, std::uint32_t crc) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < count; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ZipReader::ZipReader(const ByteSource& source) : source_(source) {
  const EndRecord end = read_end_record(source);
  const std::vector<std::uint8_t> cd = source.read_vector(end.cd_offset, end.cd_size);
  entries_.reserve(static_cast<std::size_t>(end.entries));
  std::uint64_t pos = 0;
  for (std::uint64_t i = 0; i < end.entries; ++i) {
    if (cd.size() - pos < kCentralHeaderSize) fail(source, "the central directory is truncated");
    const std::uint8_t* h = &cd[pos];
    if (u32(h) != kCentralHeaderSig)
      fail(source, "central directory entry " + std::to_string(i) + " has a bad signature");
    const std::uint16_t flags = u16(h + 8);
    const std::uint16_t method = u16(h + 10);
    ZipEntry entry;
    entry.crc32 = u32(h + 16);
    std::uint64_t compressed = u32(h + 20);
    std::uint64_t uncompressed = u32(h + 24);
    const std::uint64_t name_len = u16(h + 28);
    const std::uint64_t extra_len = u16(h + 30);
    const std::uint64_t comment_len = u16(h + 32);
    const std::uint16_t disk = u16(h + 34);
    std::uint64_t local_offset = u32(h + 42);
    if (cd.size() - pos - kCentralHeaderSize < name_len + extra_len + comment_len) {
      fail(source, "the central directory is truncated");
    }
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    check_entry_name(source, entry.name);
    // ZIP64 extended information: present for each 32-bit field that is 0xFFFFFFFF, in order.
    const std::uint8_t* extra = h + kCentralHeaderSize + name_len;
    for (std::uint64_t x = 0; x + 4 <= extra_len;) {
      const std::uint16_t id = u16(extra + x);
      const std::uint64_t len = u16(extra + x + 2);
      if (len > extra_len - x - 4) fail(source, "entry '" + entry.name + "' has a malformed extra field");
      if (id == 0x0001) {
        const std::uint8_t* z = extra + x + 4;
        std::uint64_t used = 0;
        const auto take = [&](std::uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (len - used < 8) fail(source, "entry '" + entry.name + "' has a truncated ZIP64 extra field");
          field = u64(z + used);
          used += 8;
        };
        take(uncompressed);
        take(compressed);
        take(local_offset);
      }
      x += 4 + len;
    }
    if (disk != 0) fail(source, "multi-disk archives are not supported");
    if (flags & 0x0001) fail(source, "entry '" + entry.name + "' is encrypted");
    if (method != 0) {
      throw FormatError(source.label() + ": zip entry '" + entry.name + "' is compressed (method " +
                        std::to_string(method) + "); only stored entries are supported, as torch.save writes them");
    }
    if (compressed != uncompressed) {
      fail(source, "stored entry '" + entry.name + "' has different compressed and uncompressed sizes");
    }
    entry.size = uncompressed;
    // The data starts after the local header, whose name and extra lengths may differ from
    // the central directory's (torch pads the local extra field to align the data).
    if (local_offset > end.cd_offset || end.cd_offset - local_offset < kLocalHeaderSize) {
      fail(source, "entry '" + entry.name + "' has a local header outside the archive's data");
    }
    std::array<std::uint8_t, kLocalHeaderSize> local{};
    source.read(local_offset, kLocalHeaderSize, local.data());
    if (u32(local.data()) != kLocalHeaderSig) fail(source, "entry '" + entry.name + "' has a bad local header");
    const std::uint64_t local_name_len = u16(local.data() + 26);
    const std::uint64_t header_end = local_offset + kLocalHeaderSize + local_name_len + u16(local.data() + 28);
    if (header_end > end.cd_offset || entry.size > end.cd_offset - header_end) {
      fail(source, "the data of entry '" + entry.name + "' (" + std::to_string(entry.size) +
                       " bytes) runs past the central directory (truncated archive?)");
    }
    if (local_name_len != name_len) fail(source, "entry '" + entry.name + "' has a different name in its local header");
    std::string local_name(name_len, '\0');
    source.read(local_offset + kLocalHeaderSize, name_len, local_name.data());
    if (local_name != entry.name) fail(source, "entry '" + entry.name + "' has a different name in its local header");
    entry.data_offset = header_end;
    if (!index_.emplace(entry.name, entries_.size()).second) {
      fail(source, "duplicate entry '" + entry.name + "'");
    }
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::vector<std::uint8_t> ZipReader::read_entry(const ZipEntry& entry) const {
  std::vector<std::uint8_t> bytes = source_.read_vector(entry.data_offset, entry.size);
  if (crc32(bytes.data(), bytes.size()) != entry.crc32) {
    throw FormatError(source_.label() + ": zip entry '" + entry.name + "' fails its CRC-32 check (corrupted file)");
  }
  return bytes;
}

}  // namespace ckptio::detail::formats
