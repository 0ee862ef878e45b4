// Reads a container: header attributes, metadata datasets and blocks of tensors.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"
#include "h5/container_writer.hpp"
#include "h5/h5_handle.hpp"
#include "h5/raw_io.hpp"

namespace ckptio::detail::h5 {

// Throws IntegrityError naming `file` when the root attribute index_xxh3 is present and does
// not match the index bytes.
void check_index_checksum(const RootAttributes& attributes, const std::string& json_text, const std::string& file);

class ContainerReader {
 public:
  // Opens `path` read-only: collectively through MPI-IO when comm is not MPI_COMM_NULL,
  // otherwise serially. Throws IoError when the file cannot be read, FormatError when it is
  // not HDF5, not a ckptio container, or of an unsupported format version.
  ContainerReader(MPI_Comm comm, const std::string& path);
  ~ContainerReader();
  ContainerReader(const ContainerReader&) = delete;
  ContainerReader& operator=(const ContainerReader&) = delete;

  int format_version() const { return format_version_; }
  const RootAttributes& root_attributes() const { return attributes_; }

  // A whole 1-D byte dataset (at most `max_bytes`, else FormatError).
  std::string read_bytes(const char* path, std::uint64_t max_bytes);
  // Part of a 1-D byte dataset.
  std::string read_bytes_range(const char* path, std::uint64_t offset, std::uint64_t bytes);
  std::uint64_t dataset_elements(const char* path);
  std::vector<std::uint64_t> read_u64(const char* path, std::uint64_t max_elements);

  // Reads `block` of tensor group/name into `out` (row-major, contiguous). The dataset must
  // exist with the datatype of `dtype` and the global shape `shape` (else FormatError).
  void read_block(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                  const Block& block, void* out);

  // A block that read_block will be asked for.
  struct BlockRequest {
    const std::string* group;
    const std::string* name;
    DType dtype;
    const Shape* shape;
    const Block* block;
  };
  // Optional hint before many read_block calls: the file ranges of small contiguous blocks
  // are merged (over small gaps) into windows of the file that are each read with one call
  // when first needed, and later read_block calls within a window are served from memory.
  // Checks each tensor as read_block does.
  void plan_reads(const std::vector<BlockRequest>& requests);

  // Closes every object and the file (collective when opened collectively).
  void close();

 private:
  struct OpenDataset {
    Handle dataset;
    Handle type;
    std::optional<std::uint64_t> address;  // of the raw data, when it can be read directly
    Shape shape;
    std::size_t esz = 0;
  };
  struct Window {
    std::uint64_t begin = 0, end = 0;  // file addresses
    std::vector<char> data;            // empty until first used
  };
  void read_raw(std::uint64_t address, std::uint64_t bytes, void* out);
  void plan_reads_unchecked(const std::vector<BlockRequest>& requests);
  OpenDataset& open_tensor(const std::string& group, const std::string& name, DType dtype, const Shape& shape);
  Handle open_dataset(const char* path);
  // `name` under `location`; `path` names it in messages.
  Handle open_dataset_in(hid_t location, const char* name, const std::string& path);
  hid_t tensor_group(const std::string& group, const std::string& where);
  void read_header();
  std::string read_bytes_unchecked(const char* path, std::uint64_t max_bytes);
  std::string read_bytes_range_unchecked(const char* path, std::uint64_t offset, std::uint64_t bytes);
  std::uint64_t dataset_elements_unchecked(const char* path);
  std::vector<std::uint64_t> read_u64_unchecked(const char* path, std::uint64_t max_elements);
  void read_block_unchecked(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                            const Block& block, void* out);

  std::string path_;
  Handle file_;
  int format_version_ = 0;
  RootAttributes attributes_;
  std::map<std::string, OpenDataset> tensors_;
  std::map<std::string, Handle> groups_;  // tensor groups, opened once
  RawFile raw_file_;
  std::uint64_t end_of_file_ = 0;
  std::vector<Window> windows_;  // sorted, disjoint
};

}  // namespace ckptio::detail::h5
