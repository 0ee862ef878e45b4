// ckptio: reading PyTorch `.pt` / `.pth` files without Python or LibTorch: the zip format
// torch.save writes since PyTorch 1.6, and the legacy format before it. Weights only: the
// pickle inside may use only plain containers, numbers, strings, OrderedDict and tensors
// (docs/PYTORCH.md lists the allow-list); anything else is refused and nothing in the file
// is ever executed. Not collective: a TorchFile is read by one process; open it on each
// rank that needs it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"
#include "ckptio/tensor_info.hpp"

namespace ckptio {

class TorchFile {
 public:
  // Opens, parses and validates `path` (archive, pickle, every tensor's view against its
  // storage). Throws IoError when it cannot be read and FormatError, naming the file, for
  // anything it cannot accept: a compressed entry, a global
  // outside the allow-list, a truncated archive, ...
  explicit TorchFile(const std::filesystem::path& path);
  // The same from bytes in memory (which must outlive the TorchFile); `label` names them in
  // error messages.
  TorchFile(std::span<const std::uint8_t> bytes, std::string label);
  ~TorchFile();
  TorchFile(TorchFile&&) noexcept;
  TorchFile& operator=(TorchFile&&) noexcept;

  // The tensors in the order of the file's pickle: format Torch, named by their dotted path
  // from the top-level dict, with their storage, offset, strides and contiguity.
  const std::vector<TensorInfo>& tensors() const;
  // nullptr when there is no tensor of that name.
  const TensorInfo* find(std::string_view name) const;
  // Every value that is not a tensor, by dotted key ("epoch", "optimizer.param_groups"),
  // in file order: the largest sub-trees without tensors, as JSON.
  const std::vector<std::pair<std::string, nlohmann::json>>& values() const;
  // The archive's top-level folder ("archive", or the stem torch.save was given); empty for
  // a legacy (PyTorch < 1.6) file.
  const std::string& folder() const;

  // Copies elements [begin, end) of the row-major flattening of tensor `index` into `out`,
  // contiguously (non-contiguous views are gathered). Throws UsageError for a bad range.
  void read_elements(std::size_t index, std::int64_t begin, std::int64_t end, void* out) const;
  // Copies the block (offset and count per dimension) of tensor `index` into `out`, in
  // row-major order of `count`.
  void read_block(std::size_t index, const Block& block, void* out) const;
  // Copies a shard's piece (a Block or a FlatRange, as in TensorShard::piece) into `out`.
  // Throws MismatchError when `dtype` or `global_shape` differ from the tensor's (naming
  // the file and the tensor), UsageError for a piece outside the tensor.
  void read_piece(std::size_t index, DType dtype, const Shape& global_shape, const Piece& piece, void* out) const;
  // The whole tensor, row-major.
  std::vector<std::uint8_t> read(std::size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckptio
