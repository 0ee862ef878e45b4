// Where load_checkpoint reads tensors from: a set of named tensors, each with a dtype, a
// shape and a way to read any block of it. A format that stores tensors as contiguous
// row-major bytes derives from ByteRangeSource and only provides read_bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"

namespace ckptio::detail {

struct SourceTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::string file;  // for messages and listings
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const std::vector<SourceTensor>& tensors() const = 0;
  // Reads `block` of tensors()[index] into `out`, row-major and contiguous, in the stored
  // dtype. Throws ckptio::Error naming the file and tensor.
  virtual void read_block(std::size_t index, const Block& block, void* out) = 0;
};

class ByteRangeSource : public TensorSource {
 public:
  void read_block(std::size_t index, const Block& block, void* out) override;

 protected:
  // Reads `bytes` bytes at `offset` of the tensor's stored row-major bytes.
  virtual void read_bytes(std::size_t index, std::uint64_t offset, std::uint64_t bytes, void* out) = 0;
};

// One or more safetensors files (the shards of an export), memory-mapped.
std::unique_ptr<TensorSource> open_safetensors_source(const std::vector<std::filesystem::path>& files);

// The tensors of a PyTorch torch.save file (read weights-only); with a group ("model",
// "ema", ...) only the tensors under that top-level key, named without it.
std::unique_ptr<TensorSource> open_torch_source(const std::filesystem::path& file, const std::string& group);

// One group of a ckptio container, read through the container reader (no MPI). With
// `verify`, the index's checksum and every stored chunk a read touches are checked
// (IntegrityError on a mismatch).
std::unique_ptr<TensorSource> open_container_source(const std::filesystem::path& file, const std::string& group,
                                                    bool verify);

}  // namespace ckptio::detail
