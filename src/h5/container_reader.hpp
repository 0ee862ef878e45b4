// Reads a container: header attributes, metadata datasets and blocks of tensors.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"
#include "h5/container_writer.hpp"
#include "h5/index_codec.hpp"

namespace ckptio::detail::h5 {

// The largest index and running state a reader accepts (documented in docs/FORMAT.md).
inline constexpr std::uint64_t kMaxIndexBytes = 1ull << 30;
inline constexpr std::uint64_t kMaxRunningStateBytes = 1ull << 30;

// Throws IntegrityError naming `file` when the root attribute index_xxh3 is present and does
// not match the index bytes.
void check_index_checksum(const RootAttributes& attributes, const std::string& json_text, const std::string& file);

class ContainerReader {
 public:
  // Opens `path` read-only: through MPI-IO when comm is not MPI_COMM_NULL (each rank on its
  // own, MPI_COMM_SELF: no HDF5 call of the reader is collective, so a damaged file cannot
  // make one rank wait in a collective call that the others never make), otherwise serially
  // (sec2). Throws IoError when the file cannot be read (or is not a regular
  // file: a FIFO is never opened), FormatError when it is not HDF5, not a ckptio container,
  // or of an unsupported format version, or when a top-level group is a soft or external
  // link. Every dataset is checked when it is opened: a hard link to a contiguous (or
  // compact) dataset inside the file, else FormatError (docs/FORMAT.md).
  ContainerReader(MPI_Comm comm, const std::string& path);
  ~ContainerReader();
  ContainerReader(const ContainerReader&) = delete;
  ContainerReader& operator=(const ContainerReader&) = delete;

  int format_version() const;
  // The file's size in bytes (0 when HDF5 cannot tell).
  std::uint64_t file_bytes() const;
  const RootAttributes& root_attributes() const;

  // A whole 1-D byte dataset holding JSON text (at most `max_bytes`, else FormatError).
  // Read in pieces; a NUL byte (never in JSON text: damage, or a hole in a sparse file) is a
  // FormatError at the first piece that has one, so memory grows only with real content.
  std::string read_bytes(const char* path, std::uint64_t max_bytes);
  // The index (/_ckptio/index, at most `max_bytes`): checked against the root attribute
  // index_xxh3, decoded (decode_index), and the data it declares checked against the file's
  // size. Throws FormatError / IntegrityError naming the file.
  ContainerIndex read_index(std::uint64_t max_bytes = kMaxIndexBytes);
  // Part of a 1-D byte dataset.
  std::string read_bytes_range(const char* path, std::uint64_t offset, std::uint64_t bytes);
  std::uint64_t dataset_elements(const char* path);
  std::vector<std::uint64_t> read_u64(const char* path, std::uint64_t max_elements);

  // Reads `block` of tensor group/name into `out` (row-major, contiguous). The dataset must
  // exist with the datatype of `dtype` and the global shape `shape` (else FormatError).
  void read_block(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                  const Block& block, void* out);

  // Reads `block` of a tensor of the index that read_index returned into `out`, as
  // read_block does, but finds a packed tensor through its index record instead of by name.
  void read_stored_block(const IndexTensor& tensor, const Block& block, void* out);

  // A block of a tensor of the index that read_stored_block will be asked for.
  struct BlockRequest {
    const IndexTensor* tensor;
    const Block* block;
  };
  // Optional hint before many read_stored_block calls: the file ranges of small contiguous
  // blocks are merged (over small gaps) into windows of the file that are each read with one
  // call when first needed, and later reads within a window are served from memory. Checks
  // each tensor as read_stored_block does.
  void plan_reads(const std::vector<BlockRequest>& requests);

  // From now on the page-aligned middle of every large contiguous read of tensor data goes
  // through a second descriptor opened with O_DIRECT (no copy through the page cache):
  // straight into the caller's memory where it is page-aligned, else through a small
  // aligned buffer. Where O_DIRECT is refused (tmpfs) reads stay buffered.
  void enable_direct_io();
  // Whether direct reads are in use (false before enable_direct_io, or where refused).
  bool direct_io() const;

  // Closes every object and the file (never collective).
  void close();

 private:
  class Impl;  // the HDF5 objects (container_reader.cpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckptio::detail::h5
