// Direct access to the raw data of contiguous datasets. Datasets are created with contiguous
// layout and early allocation, so each one's elements lie at a fixed address of the file
// (H5Dget_offset) in row-major order, stored in the same little-endian representation as in
// memory. A block that is contiguous in row-major order is then one byte range of the file,
// which is read or written with one MPI-IO (or pread) call instead of an HDF5 transfer, and
// ranges of neighbouring small tensors are merged into one call.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/shard.hpp"
#include "h5/h5_handle.hpp"

namespace ckptio::detail::h5 {

struct ByteRange {
  std::uint64_t offset = 0;  // from the start of the dataset's data
  std::uint64_t bytes = 0;
};

// The bytes of `block` inside a row-major dataset of `shape` with elements of `esz` bytes,
// when they are one contiguous range; nullopt otherwise. A scalar (empty count) is one element.
std::optional<ByteRange> contiguous_range(const Shape& shape, const Block& block, std::size_t esz);

// The contiguous runs of `block` inside a row-major tensor of `shape` (elements of `esz`
// bytes), in row-major order: calls fn(offset in the tensor's data, offset in the block's
// contiguous row-major copy, bytes) for each. The block must lie inside the shape.
// Used for packed tensors, which have no dataset of their own to select a hyperslab in.
template <class Fn>
void for_each_run(const Shape& shape, const Block& block, std::size_t esz, Fn&& fn) {
  const std::size_t n = shape.size();
  if (n == 0) {
    fn(std::uint64_t{0}, std::uint64_t{0}, static_cast<std::uint64_t>(esz));
    return;
  }
  for (std::size_t d = 0; d < n; ++d)
    if (block.count[d] == 0) return;
  // Dimensions k+1.. are whole, so a run spans count[k] x their extents.
  std::size_t k = n - 1;
  std::uint64_t run = static_cast<std::uint64_t>(block.count[k]);
  while (k > 0 && block.count[k] == shape[k]) {
    --k;
    run *= static_cast<std::uint64_t>(block.count[k]);
  }
  std::vector<std::uint64_t> stride(n, 1);
  for (std::size_t d = n - 1; d > 0; --d) stride[d - 1] = stride[d] * static_cast<std::uint64_t>(shape[d]);
  std::uint64_t base = 0;
  for (std::size_t d = k; d < n; ++d) base += static_cast<std::uint64_t>(block.offset[d]) * stride[d];
  std::vector<std::int64_t> at(k, 0);  // index inside the block over dimensions 0..k-1
  for (std::uint64_t done = 0;;) {
    std::uint64_t element = base;
    for (std::size_t d = 0; d < k; ++d) element += static_cast<std::uint64_t>(block.offset[d] + at[d]) * stride[d];
    fn(element * esz, done * esz, run * esz);
    done += run;
    std::size_t d = k;
    while (d > 0 && ++at[d - 1] == block.count[d - 1]) at[--d] = 0;
    if (d == 0) return;
  }
}

// Whether memory and file representations are identical (little-endian host).
bool raw_io_possible();

// The file address of a dataset's raw data, or nullopt when it has none (not allocated,
// not contiguous).
std::optional<std::uint64_t> raw_data_address(hid_t dataset);

// The file underneath an open HDF5 file, when it uses the MPI-IO or the sec2 driver.
class RawFile {
 public:
  RawFile() = default;
  // Binds to `file`'s driver handle; usable() is false for other drivers.
  explicit RawFile(hid_t file);
  bool usable() const { return mpi_ != nullptr || fd_ >= 0; }
  // Throws IoError (what + reason) on failure. A read beyond the end of the file zero-fills
  // the rest, as HDF5 does.
  void write_at(std::uint64_t address, const void* data, std::uint64_t bytes, const std::string& what) const;
  void read_at(std::uint64_t address, void* data, std::uint64_t bytes, const std::string& what) const;

 private:
  // One pwrite/pread or MPI-IO call of at most n bytes (EINTR retried); returns the bytes
  // moved, 0 at the end of the file. Throws IoError (what + reason).
  std::uint64_t transfer_once(bool write, std::uint64_t address, char* p, std::uint64_t n,
                              const std::string& what) const;
  MPI_File* mpi_ = nullptr;
  int fd_ = -1;
};

// O_DIRECT offsets, lengths and buffers are multiples of this (the largest logical block
// size in common use).
inline constexpr std::uint64_t kDirectIoAlignment = 4096;

// Collects contiguous writes of one rank, merges those whose file ranges follow each other
// into one buffer and writes each run with one call. flush() must be called before the
// file is closed; large writes go straight from the caller's memory.
class CoalescingWriter {
 public:
  // `path` names the file in error messages.
  CoalescingWriter(const RawFile& file, std::string path) : file_(file), path_(std::move(path)) {}
  ~CoalescingWriter();
  CoalescingWriter(const CoalescingWriter&) = delete;
  CoalescingWriter& operator=(const CoalescingWriter&) = delete;
  // From now on the page-aligned middle of every large write goes through a second
  // descriptor opened with O_DIRECT (DMA from memory, no copy into the page cache); its
  // unaligned ends stay buffered. Where O_DIRECT is refused (at open or at the first write,
  // e.g. on tmpfs) everything stays buffered. The caller still fsyncs the file.
  void enable_direct_io();
  bool direct_io() const { return direct_fd_ >= 0; }
  // `padding_before`: the caller's promise that the bytes just before `address` are padding
  // that no rank writes; when the gathered bytes end right before them, they are filled with
  // zeros so that the run continues (packed tensors lie 64-byte aligned).
  void write(std::uint64_t address, const void* data, std::uint64_t bytes, std::uint64_t padding_before = 0);
  void flush();

 private:
  // Direct (the aligned middle) when at least `direct_min_bytes`, else buffered.
  void write_now(std::uint64_t address, const void* data, std::uint64_t bytes, std::uint64_t direct_min_bytes);
  // The gathered bytes; they start at gather_ + pending_address_ % the direct I/O alignment,
  // so that their aligned middle is an aligned source (written direct without a copy).
  char* pending_data() const;
  // Appends to the gathered bytes, writing out each full buffer (write_full_buffer); null
  // `data`: zeros.
  void append(const char* data, std::uint64_t bytes);
  // The gather buffer is full: writes it up to its last alignment boundary and keeps the
  // rest (less than one alignment unit) gathering, so that a long run of small pieces goes
  // out in whole aligned blocks and only the run's two ends are written unaligned (buffered,
  // which waits behind the other ranks' direct writes for the file's lock).
  void write_full_buffer();
  // Writes [address, address + bytes), both multiples of the direct I/O alignment, with
  // O_DIRECT; false when the file system refused it before anything was written.
  bool write_direct(std::uint64_t address, const char* data, std::uint64_t bytes);
  const RawFile& file_;
  std::string path_;
  char* gather_ = nullptr;  // aligned; kGatherBytes plus one alignment unit, allocated when first needed
  std::uint64_t pending_bytes_ = 0;
  std::uint64_t pending_address_ = 0;
  int direct_fd_ = -1;
  char* bounce_ = nullptr;  // aligned staging for sources that are not aligned themselves
};

// Reads ranges of a file, the page-aligned middle of each large one with O_DIRECT (DMA into
// memory, no copy through the page cache, no readahead): straight into the destination
// where it is page-aligned, else through a small aligned buffer. The unaligned ends, small
// ranges, and everything where the file system refuses O_DIRECT (at open or at the first
// read, e.g. on tmpfs) go through `file`.
class DirectReader {
 public:
  // `path` is opened a second time for the direct reads and names the file in errors.
  DirectReader(const RawFile& file, std::string path) : file_(file), path_(std::move(path)) {}
  ~DirectReader();
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;
  // From now on large reads go direct where the file system allows it.
  void enable_direct_io();
  bool direct_io() const { return direct_fd_ >= 0; }
  // Reads [address, address + bytes) into out; a read beyond the end of the file zero-fills
  // the rest, as RawFile::read_at does. Throws IoError naming the file.
  void read(std::uint64_t address, void* out, std::uint64_t bytes);

 private:
  void read_buffered(std::uint64_t address, char* out, std::uint64_t bytes) const;
  // Reads [address, address + bytes), both multiples of the direct I/O alignment, with
  // O_DIRECT; false when the file system refused it before anything was read.
  bool read_direct(std::uint64_t address, char* out, std::uint64_t bytes);
  const RawFile& file_;
  std::string path_;
  int direct_fd_ = -1;
  bool read_any_ = false;   // a direct read succeeded: a later refusal is an error
  char* bounce_ = nullptr;  // aligned staging for destinations that are not aligned themselves
};

}  // namespace ckptio::detail::h5
