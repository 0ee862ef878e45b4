#include "h5/raw_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "mpi/mpi_file.hpp"

namespace ckptio::detail::h5 {
namespace {

// Runs of pieces up to this size are gathered into one buffer; larger ones are written
// from the caller's memory.
constexpr std::uint64_t kGatherBytes = 4ull << 20;
// One MPI call moves at most this much (its count is an int).
constexpr std::uint64_t kMaxCallBytes = 1ull << 30;
// Only writes of at least kDirectMinBytes go direct.
constexpr std::uint64_t kDirectAlign = kDirectIoAlignment;
constexpr std::uint64_t kDirectMinBytes = 1ull << 20;
// A gathered run of small pieces goes direct from this size: its bytes are already one copy
// away from the caller's, which the page cache would only copy again.
constexpr std::uint64_t kDirectGatheredMinBytes = 64ull << 10;
// Unaligned sources are copied through an aligned buffer of this size.
constexpr std::uint64_t kBounceBytes = 8ull << 20;
// Reads of at least this size go direct: below it a buffered read is as fast, and larger
// pieces end in tails this small, which buffered reads would pull into the page cache with
// readahead.
constexpr std::uint64_t kDirectReadMinBytes = 64ull << 10;
// Unaligned destinations of direct reads are filled through an aligned buffer of this size
// (large enough for the device to stream, small enough to stay in the CPU's caches).
constexpr std::uint64_t kReadBounceBytes = 4ull << 20;

}  // namespace

std::optional<ByteRange> contiguous_range(const Shape& shape, const Block& block, std::size_t esz) {
  if (block.count.size() != shape.size() || block.offset.size() != shape.size()) return std::nullopt;
  // Row-major: after the first dimension whose count exceeds 1, every count must span its
  // whole dimension.
  std::uint64_t first = 0, elements = 1;
  bool spanning = false;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const std::int64_t n = shape[d], off = block.offset[d], cnt = block.count[d];
    if (off < 0 || cnt < 0 || off > n || cnt > n - off) return std::nullopt;
    if (cnt == 0) return ByteRange{0, 0};
    if (spanning && (off != 0 || cnt != n)) return std::nullopt;
    if (cnt > 1) spanning = true;
    first = first * static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(off);
    elements *= static_cast<std::uint64_t>(cnt);
  }
  return ByteRange{first * esz, elements * esz};
}

bool raw_io_possible() { return std::endian::native == std::endian::little; }

std::optional<std::uint64_t> raw_data_address(hid_t dataset) {
  const haddr_t address = H5Dget_offset(dataset);
  if (address == HADDR_UNDEF) {
    take_error_stack();  // H5Dget_offset pushes an error for unallocated storage
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(address);
}

RawFile::RawFile(hid_t file) {
  if (!raw_io_possible()) return;
  Handle fapl(H5Fget_access_plist(file));
  if (!fapl.valid()) {
    take_error_stack();
    return;
  }
  // No user block: HDF5 addresses are file offsets.
  Handle fcpl(H5Fget_create_plist(file));
  hsize_t user_block = 0;
  if (!fcpl.valid() || H5Pget_userblock(fcpl.get(), &user_block) < 0 || user_block != 0) {
    take_error_stack();
    return;
  }
  const hid_t driver = H5Pget_driver(fapl.get());
  void* handle = nullptr;
  if (driver == H5FD_MPIO) {
    if (H5Fget_vfd_handle(file, fapl.get(), &handle) >= 0 && handle) mpi_ = static_cast<MPI_File*>(handle);
  } else if (driver == H5FD_SEC2) {
    if (H5Fget_vfd_handle(file, fapl.get(), &handle) >= 0 && handle) fd_ = *static_cast<int*>(handle);
  }
  take_error_stack();
}

std::uint64_t RawFile::transfer_once(bool write, std::uint64_t address, char* p, std::uint64_t n,
                                     const std::string& what) const {
  if (mpi_) return mpi_transfer_once(*mpi_, write, address, p, n, what);
  for (;;) {
    const ssize_t rc =
        write ? ::pwrite(fd_, p, n, static_cast<off_t>(address)) : ::pread(fd_, p, n, static_cast<off_t>(address));
    if (rc >= 0) return static_cast<std::uint64_t>(rc);
    if (errno != EINTR) throw IoError(what + ": " + std::strerror(errno));
  }
}

void RawFile::write_at(std::uint64_t address, const void* data, std::uint64_t bytes, const std::string& what) const {
  // transfer_once serves both directions; on a write it only reads from p.
  char* p = const_cast<char*>(static_cast<const char*>(data));
  while (bytes > 0) {
    const std::uint64_t done = transfer_once(true, address, p, std::min(bytes, kMaxCallBytes), what);
    if (done == 0) throw IoError(what + ": short write");
    p += done;
    address += done;
    bytes -= done;
  }
}

void RawFile::read_at(std::uint64_t address, void* data, std::uint64_t bytes, const std::string& what) const {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const std::uint64_t done = transfer_once(false, address, p, std::min(bytes, kMaxCallBytes), what);
    if (done == 0) {  // end of file
      std::memset(p, 0, bytes);
      return;
    }
    p += done;
    address += done;
    bytes -= done;
  }
}

CoalescingWriter::~CoalescingWriter() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  std::free(bounce_);
  std::free(gather_);
}

void CoalescingWriter::enable_direct_io() {
  if (direct_fd_ >= 0) return;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    log_debug("direct I/O not available for ", path_, " (", std::strerror(errno), "); writing through the page cache");
    return;
  }
  direct_fd_ = fd;
}

bool CoalescingWriter::write_direct(std::uint64_t address, const char* data, std::uint64_t bytes) {
  const bool aligned_source = reinterpret_cast<std::uintptr_t>(data) % kDirectAlign == 0;
  if (!aligned_source && !bounce_) {
    bounce_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, kBounceBytes));
    if (!bounce_) throw IoError("write " + path_ + ": cannot allocate a direct I/O buffer");
  }
  bool wrote_any = false;
  while (bytes > 0) {
    const std::uint64_t n = std::min(bytes, aligned_source ? kMaxCallBytes : kBounceBytes);
    const char* src = data;
    if (!aligned_source) {
      std::memcpy(bounce_, data, n);
      src = bounce_;
    }
    const ssize_t rc = ::pwrite(direct_fd_, src, n, static_cast<off_t>(address));
    if (rc < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && !wrote_any) return false;  // the file system refuses O_DIRECT
      throw IoError("write " + std::to_string(n) + " bytes at offset " + std::to_string(address) + " of " + path_ +
                    " (direct I/O): " + std::strerror(errno));
    }
    // A short direct write (full disk) leaves an unaligned remainder: finish it buffered.
    const auto done = static_cast<std::uint64_t>(rc);
    if (done < n) {
      file_.write_at(address + done, data + done, bytes - done,
                     "write " + std::to_string(bytes - done) + " bytes at offset " + std::to_string(address + done) +
                         " of " + path_);
      return true;
    }
    wrote_any = true;
    data += n;
    address += n;
    bytes -= n;
  }
  return true;
}

void CoalescingWriter::write_now(std::uint64_t address, const void* data, std::uint64_t bytes,
                                 std::uint64_t direct_min_bytes) {
  const char* p = static_cast<const char*>(data);
  if (direct_fd_ >= 0 && bytes >= direct_min_bytes) {
    const std::uint64_t begin = (address + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
    const std::uint64_t end = (address + bytes) / kDirectAlign * kDirectAlign;
    if (write_direct(begin, p + (begin - address), end - begin)) {
      if (begin > address) write_now(address, p, begin - address, kDirectMinBytes);
      if (address + bytes > end) write_now(end, p + (end - address), address + bytes - end, kDirectMinBytes);
      return;
    }
    log_debug("direct I/O refused for ", path_, "; writing through the page cache");
    ::close(direct_fd_);
    direct_fd_ = -1;
  }
  file_.write_at(address, data, bytes,
                 "write " + std::to_string(bytes) + " bytes at offset " + std::to_string(address) + " of " + path_);
}

char* CoalescingWriter::pending_data() const { return gather_ + pending_address_ % kDirectAlign; }

void CoalescingWriter::append(const char* data, std::uint64_t bytes) {
  while (bytes > 0) {
    const std::uint64_t n = std::min(bytes, kGatherBytes - pending_bytes_);
    if (data) {
      std::memcpy(pending_data() + pending_bytes_, data, n);
      data += n;
    } else {
      std::memset(pending_data() + pending_bytes_, 0, n);
    }
    pending_bytes_ += n;
    bytes -= n;
    if (pending_bytes_ == kGatherBytes) write_full_buffer();
  }
}

void CoalescingWriter::write(std::uint64_t address, const void* data, std::uint64_t bytes,
                             std::uint64_t padding_before) {
  if (bytes == 0) return;
  const char* p = static_cast<const char*>(data);
  const bool small = bytes <= kGatherBytes / 4;
  if (pending_bytes_ > 0 && small && padding_before > 0 && padding_before <= kDirectAlign &&
      address == pending_address_ + pending_bytes_ + padding_before)
    append(nullptr, padding_before);
  if (pending_bytes_ > 0 && address == pending_address_ + pending_bytes_ && small) {
    append(p, bytes);
    return;
  }
  flush();
  if (!small) {
    write_now(address, data, bytes, kDirectMinBytes);
    return;
  }
  if (!gather_) {
    gather_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, kGatherBytes + kDirectAlign));
    if (!gather_) throw IoError("write " + path_ + ": cannot allocate a gather buffer");
  }
  pending_address_ = address;
  std::memcpy(pending_data(), p, bytes);
  pending_bytes_ = bytes;
}

void CoalescingWriter::write_full_buffer() {
  const std::uint64_t end = pending_address_ + pending_bytes_;
  const std::uint64_t cut = end / kDirectAlign * kDirectAlign;  // > pending_address_: the buffer spans a unit
  struct Clear {                                                // when the write throws, nothing stays pending
    std::uint64_t& bytes;
    bool done = false;
    ~Clear() {
      if (!done) bytes = 0;
    }
  } clear{pending_bytes_};
  write_now(pending_address_, pending_data(), cut - pending_address_, kDirectMinBytes);
  clear.done = true;
  const std::uint64_t keep = end - cut;
  std::memmove(gather_, pending_data() + (cut - pending_address_), keep);  // cut % kDirectAlign == 0
  pending_address_ = cut;
  pending_bytes_ = keep;
}

void CoalescingWriter::flush() {
  if (pending_bytes_ == 0) return;
  struct Clear {  // also when the write throws
    std::uint64_t& bytes;
    ~Clear() { bytes = 0; }
  } clear{pending_bytes_};
  write_now(pending_address_, pending_data(), pending_bytes_, kDirectGatheredMinBytes);
}

DirectReader::~DirectReader() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  std::free(bounce_);
}

void DirectReader::enable_direct_io() {
  if (direct_fd_ >= 0 || !file_.usable()) return;
  const int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    log_debug("direct I/O not available for ", path_, " (", std::strerror(errno), "); reading through the page cache");
    return;
  }
  direct_fd_ = fd;
}

void DirectReader::read_buffered(std::uint64_t address, char* out, std::uint64_t bytes) const {
  file_.read_at(address, out, bytes, "read " + path_);
}

bool DirectReader::read_direct(std::uint64_t address, char* out, std::uint64_t bytes) {
  const bool aligned_destination = reinterpret_cast<std::uintptr_t>(out) % kDirectAlign == 0;
  if (!aligned_destination && !bounce_) {
    bounce_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, kReadBounceBytes));
    if (!bounce_) throw IoError("read " + path_ + ": cannot allocate a direct I/O buffer");
  }
  while (bytes > 0) {
    const std::uint64_t n = std::min(bytes, aligned_destination ? kMaxCallBytes : kReadBounceBytes);
    char* dst = aligned_destination ? out : bounce_;
    const ssize_t rc = ::pread(direct_fd_, dst, n, static_cast<off_t>(address));
    if (rc < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && !read_any_) return false;  // the file system refuses O_DIRECT
      throw IoError("read " + path_ + " (" + std::to_string(n) + " bytes at offset " + std::to_string(address) +
                    ", direct I/O): " + std::strerror(errno));
    }
    read_any_ = true;
    const auto done = static_cast<std::uint64_t>(rc);
    if (!aligned_destination) std::memcpy(out, bounce_, done);
    // A short direct read (the end of the file) leaves a remainder: read it buffered, which
    // zero-fills beyond the end.
    if (done < n) {
      read_buffered(address + done, out + done, bytes - done);
      return true;
    }
    out += n;
    address += n;
    bytes -= n;
  }
  return true;
}

void DirectReader::read(std::uint64_t address, void* data, std::uint64_t bytes) {
  char* out = static_cast<char*>(data);
  if (direct_fd_ >= 0 && bytes >= kDirectReadMinBytes) {
    const std::uint64_t begin = (address + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
    const std::uint64_t end = (address + bytes) / kDirectAlign * kDirectAlign;
    if (read_direct(begin, out + (begin - address), end - begin)) {
      if (begin > address) read_buffered(address, out, begin - address);
      if (address + bytes > end) read_buffered(end, out + (end - address), address + bytes - end);
      return;
    }
    log_debug("direct I/O refused for ", path_, "; reading through the page cache");
    ::close(direct_fd_);
    direct_fd_ = -1;
  }
  read_buffered(address, out, bytes);
}

}  // namespace ckptio::detail::h5
