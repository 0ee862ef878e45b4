// Writes a container collectively through MPI-IO. Functions marked "collective" must be
// called by every rank of the communicator in the same order with the same arguments;
// the others are independent (one rank each).
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
#include "h5/container_format.hpp"

namespace ckptio::detail::h5 {

// How the file is laid out and opened; every rank passes the same values.
struct FileTuning {
  // MPI-IO hints (MPI_Info key/value pairs) passed when the file is opened, e.g.
  // striping_factor / striping_unit on Lustre, cb_nodes, romio_cb_write.
  std::map<std::string, std::string> mpi_io_hints;
  // Datasets of at least this many bytes start at a multiple of `alignment` (H5Pset_alignment);
  // 0 keeps HDF5's packing. Align to the file system's stripe or block size.
  std::uint64_t alignment = 0;
  std::uint64_t alignment_threshold = 0;
  // Write the page-aligned middle of large contiguous pieces with O_DIRECT, bypassing the
  // page cache; silently buffered where the file system refuses O_DIRECT (tmpfs).
  bool direct_io = false;  // CheckpointOptions::direct_io decides
  // Tensors of at most this many bytes have no dataset of their own: they are packed into
  // one byte dataset per group (format version 2, docs/FORMAT.md). 0 packs none (version 1).
  std::uint64_t packed_tensor_max_bytes = kPackedTensorMaxBytes;
};

struct DatasetSpec {
  std::string group;  // "model", "optimizer", "ema"
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  // The rank that writes most of the tensor's bytes. Packed tensors lie in their group's
  // packed dataset by this rank first (in spec order within it), so that each rank's many
  // small writes and reads become a few large ones.
  int writer = 0;
};

struct RootAttributes {
  std::string library_version;
  std::string created;
  std::string host;
  std::int64_t world_size = 0;
  std::int64_t epoch = 0;
  std::int64_t step = 0;
  std::int64_t global_step = 0;
  std::string index_xxh3;  // written when not empty
};

class ContainerWriter {
 public:
  // Collective: creates (truncates) `path` with the MPI-IO driver.
  // Collective over comm. Creates `path` (truncating it) through MPI-IO.
  ContainerWriter(MPI_Comm comm, const std::string& path, const FileTuning& tuning = {});
  ~ContainerWriter();
  ContainerWriter(const ContainerWriter&) = delete;
  ContainerWriter& operator=(const ContainerWriter&) = delete;

  // Collective: the groups that have tensors, then one dataset per spec, in order, except
  // for the tensors packed (FileTuning::packed_tensor_max_bytes) into their group's packed
  // dataset, which is created here too.
  void create_datasets(const std::vector<DatasetSpec>& specs);
  // Where tensor `index` (order of create_datasets) lies in its group's packed dataset;
  // nullopt when it has a dataset of its own. The index records it.
  std::optional<std::uint64_t> packed_offset(std::size_t index) const;
  // Independent: writes `block` of dataset `index` (order of create_datasets) from `data`,
  // which holds the block's elements contiguously in row-major order. A block that is one
  // contiguous range of the file may be buffered with its neighbours until flush_blocks().
  void write_block(std::size_t index, const Block& block, const void* data);
  // Independent: writes what write_block buffered. Call after the last write_block.
  void flush_blocks();

  // Collective: creates a 1-D byte dataset of `bytes` bytes (under /_ckptio).
  void create_bytes_dataset(const char* path, std::uint64_t bytes);
  // Independent: writes `data` at `offset` into a byte dataset made by create_bytes_dataset.
  void write_bytes(const char* path, std::uint64_t offset, const void* data, std::uint64_t bytes);
  // Collective: creates a 1-D uint64 dataset of `count` values.
  void create_u64_dataset(const char* path, std::uint64_t count);
  // Independent: writes the whole of a dataset made by create_u64_dataset.
  void write_u64(const char* path, const std::vector<std::uint64_t>& values);
  // Collective: the format and provenance attributes of the root group; the format version
  // is 2 when create_datasets packed a tensor, else 1.
  void write_root_attributes(const RootAttributes& attrs);

  // Collective: closes every object and the file. Throws IoError on failure.
  void close();

 private:
  class Impl;  // the HDF5 objects (container_writer.cpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckptio::detail::h5
