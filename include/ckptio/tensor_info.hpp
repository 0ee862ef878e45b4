// ckptio: what a file says about one tensor, as inspect_container, inspect_safetensors and
// TorchFile report it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"

namespace ckptio {

// The kind of file a TensorInfo describes.
enum class TensorFormat {
  Container = 0,    // a ckptio container (inspect_container)
  Safetensors = 1,  // a safetensors file or sharded export (inspect_safetensors)
  Torch = 2,        // a PyTorch torch.save file (TorchFile)
};
// "container", "safetensors" or "torch".
const char* to_string(TensorFormat format) noexcept;

// One tensor as its file describes it (never its data). The fields after `bytes` say where
// the tensor lives; each applies to one format and keeps its default for the others.
struct TensorInfo {
  TensorFormat format = TensorFormat::Container;
  // Container: "model", "optimizer" or "ema". Empty for the other formats.
  std::string group;
  // Container: the name within its group. Safetensors: the header's key. Torch: the dotted
  // path from the file's top-level dict ("model.blocks.0.attn.qkv.weight").
  std::string name;
  DType dtype = DType::F32;
  Shape shape;              // empty for a scalar
  std::uint64_t bytes = 0;  // elements x dtype size, as the tensor is read

  // Container: the pieces the saving ranks wrote.
  std::size_t pieces = 0;
  // Safetensors: the name of the file (the shard of a sharded export) that holds it.
  std::string file;
  // Torch: the storage's key in the archive ("0", "1", ...), the view's offset into it and
  // its strides (in elements), and whether the view is row-major and dense in its storage.
  std::string storage;
  std::int64_t storage_offset = 0;
  std::vector<std::int64_t> stride;
  bool contiguous = true;  // containers and safetensors store every tensor densely

  // Number of elements (1 for a scalar).
  std::int64_t elements() const;
};

}  // namespace ckptio
