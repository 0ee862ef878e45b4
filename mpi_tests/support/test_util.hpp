// Helpers for MPI tests: shared temporary folders, deterministic tensor contents, and
// shard layouts (replicated, blocks along a dimension, flat ranges).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/ckptio.hpp"

namespace ckptio::test {

int world_rank(MPI_Comm comm = MPI_COMM_WORLD);
int world_size(MPI_Comm comm = MPI_COMM_WORLD);
// The sum of `value` over the ranks of MPI_COMM_WORLD (collective).
std::int64_t sum_over_ranks(std::uint64_t value);

// A fresh folder that every rank of `comm` sees; removed (by rank 0) on destruction.
// Collective over comm (constructor and destructor).
class SharedTempDir {
 public:
  explicit SharedTempDir(MPI_Comm comm = MPI_COMM_WORLD);
  ~SharedTempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  MPI_Comm comm_;
  std::filesystem::path path_;
};

// For tests that open, damage or replace the dataset of one tensor: small tensors are then
// written as datasets of their own (format version 1) instead of being packed.
inline constexpr const char* kUnpackedEnv = "CKPTIO_PACK_MAX_BYTES";

enum class Layout {
  Replicated,     // every rank holds the whole tensor
  Dim0Blocks,     // balanced (uneven) blocks along dimension 0
  Dim1Blocks,     // balanced blocks along dimension 1
  LastDimBlocks,  // balanced blocks along the last dimension
  SkewedDim0,     // blocks along dimension 0, rank 0 holds nothing, the last rank the most
  Flat,           // balanced flat ranges of the flattened tensor
  SkewedFlat,     // flat ranges, rank 0 holds nothing
};
const char* layout_name(Layout layout);

// A shard of `shape` for rank `rank` of `ranks` under `layout`, backed by `storage`
// (resized to fit). Layouts that need a dimension the tensor lacks fall back to Flat.
TensorShard make_shard(std::vector<std::uint8_t>& storage, DType dtype, const Shape& shape, Layout layout, int rank,
                       int ranks);

// The byte value of byte `b` of element `flat` of a tensor seeded with `seed`. BOOL
// elements are 0 or 1.
std::uint8_t pattern_byte(std::uint64_t seed, DType dtype, std::int64_t flat, std::size_t b);
// Fills the shard's memory with the pattern; checks it, returning "" or a description of
// the first wrong byte.
void fill_pattern(const TensorShard& shard, std::uint64_t seed);
std::string check_pattern(const TensorShard& shard, std::uint64_t seed);
// Sets every byte of the shard's memory to `value` (to detect elements a load skipped).
void poison(const TensorShard& shard, std::uint8_t value = 0xA5);

std::uint64_t seed_for(const std::string& name);

}  // namespace ckptio::test
