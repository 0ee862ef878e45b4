#include "io/tensor_source.hpp"

#include "ckptio/torch_file.hpp"
#include "h5/library_lock.hpp"

#include <cstring>
#include <map>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "formats/safetensors_file.hpp"
#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "io/verified_read.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {

void ByteRangeSource::read_block(std::size_t index, const Block& block, void* out) {
  const SourceTensor& t = tensors()[index];
  const std::uint64_t esize = dtype_size(t.dtype);
  auto* dst = static_cast<char*>(out);
  const std::size_t rank = t.shape.size();
  if (rank == 0) {
    read_bytes(index, 0, esize, dst);
    return;
  }
  for (auto c : block.count)
    if (c == 0) return;
  // Dimensions k+1.. are whole, so each run covers count[k] * (product of those) elements.
  std::size_t k = rank - 1;
  std::uint64_t inner = 1;
  while (k > 0 && block.offset[k] == 0 && block.count[k] == t.shape[k]) {
    inner *= static_cast<std::uint64_t>(t.shape[k]);
    --k;
  }
  const std::uint64_t run = static_cast<std::uint64_t>(block.count[k]) * inner;
  std::vector<std::int64_t> stride(rank, 1);
  for (std::size_t d = rank - 1; d > 0; --d) stride[d - 1] = stride[d] * t.shape[d];
  std::vector<std::int64_t> idx(k, 0);  // odometer over dimensions 0..k-1
  while (true) {
    std::int64_t flat = block.offset[k] * stride[k];
    for (std::size_t d = 0; d < k; ++d) flat += (block.offset[d] + idx[d]) * stride[d];
    read_bytes(index, static_cast<std::uint64_t>(flat) * esize, run * esize, dst);
    dst += run * esize;
    std::size_t d = k;
    while (d > 0) {
      --d;
      if (++idx[d] < block.count[d]) break;
      idx[d] = 0;
      if (d == 0) return;
    }
    if (k == 0) return;
  }
}

namespace {

class SafetensorsSource final : public ByteRangeSource {
 public:
  explicit SafetensorsSource(const std::vector<fs::path>& files) {
    std::map<std::string, std::string> seen;
    for (const auto& path : files) {
      files_.push_back(std::make_unique<SafetensorsFile>(path));
      const auto& header = files_.back()->header();
      for (const auto& t : header.tensors) {
        if (auto [it, fresh] = seen.emplace(t.name, path.string()); !fresh)
          throw FormatError(path.string() + ": tensor '" + t.name + "' is also stored in " + it->second);
        tensors_.push_back({t.name, t.dtype, t.shape, path.string()});
        where_.push_back({files_.back().get(), &t});
      }
    }
  }
  const std::vector<SourceTensor>& tensors() const override { return tensors_; }

 protected:
  void read_bytes(std::size_t index, std::uint64_t offset, std::uint64_t bytes, void* out) override {
    const auto& [file, tensor] = where_[index];
    if (offset + bytes > tensor->bytes())
      throw FormatError(file->path().string() + ": tensor '" + tensor->name + "': read beyond its data");
    std::memcpy(out, file->data(*tensor) + offset, bytes);
  }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<SourceTensor> tensors_;
  std::vector<std::pair<const SafetensorsFile*, const SafetensorsTensor*>> where_;
};

// One group of a container. With `verify`, every stored chunk a read touches is checked
// against the index's checksums, as CheckpointIO::load does.
class ContainerSource final : public TensorSource {
 public:
  ContainerSource(const fs::path& file, const std::string& group, bool verify)
      : file_(file.string()), group_(group), verify_(verify) {
    const std::lock_guard hdf5_lock(h5::library_mutex());  // an asynchronous save may be writing
    reader_ = std::make_unique<h5::ContainerReader>(MPI_COMM_NULL, file_);
    index_ = reader_->read_index();
    for (const auto& t : index_.tensors) {
      if (t.group != group) continue;
      tensors_.push_back({t.name, t.dtype, t.shape, file_});
      stored_.push_back(&t);
    }
  }
  ~ContainerSource() override {
    const std::lock_guard hdf5_lock(h5::library_mutex());
    try {
      reader_->close();
    } catch (...) {
    }
  }
  const std::vector<SourceTensor>& tensors() const override { return tensors_; }
  void read_block(std::size_t index, const Block& block, void* out) override {
    const std::lock_guard hdf5_lock(h5::library_mutex());
    if (!verify_)
      reader_->read_stored_block(*stored_[index], block, out);
    else
      read_block_verified(*reader_, file_, *stored_[index], index_.chunk_bytes, block, static_cast<char*>(out));
  }

 private:
  std::string file_;
  std::string group_;
  bool verify_;
  std::unique_ptr<h5::ContainerReader> reader_;
  h5::ContainerIndex index_;
  std::vector<SourceTensor> tensors_;
  std::vector<const h5::IndexTensor*> stored_;  // parallel to tensors_, into index_
};

// The tensors of a PyTorch torch.save file under `prefix` ("model." keeps model.* and
// strips the prefix; empty keeps every tensor under its full dotted name).
class TorchSource final : public TensorSource {
 public:
  TorchSource(const fs::path& file, const std::string& prefix) : file_(file) {
    const auto& all = file_.tensors();
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (all[i].name.compare(0, prefix.size(), prefix) != 0) continue;
      tensors_.push_back({all[i].name.substr(prefix.size()), all[i].dtype, all[i].shape, file.string()});
      index_.push_back(i);
    }
  }
  const std::vector<SourceTensor>& tensors() const override { return tensors_; }
  void read_block(std::size_t index, const Block& block, void* out) override {
    file_.read_block(index_[index], block, out);
  }

 private:
  TorchFile file_;
  std::vector<SourceTensor> tensors_;
  std::vector<std::size_t> index_;  // into file_.tensors()
};

}  // namespace

std::unique_ptr<TensorSource> open_torch_source(const fs::path& file, const std::string& group) {
  return std::make_unique<TorchSource>(file, group.empty() ? std::string() : group + ".");
}

std::unique_ptr<TensorSource> open_safetensors_source(const std::vector<fs::path>& files) {
  return std::make_unique<SafetensorsSource>(files);
}

std::unique_ptr<TensorSource> open_container_source(const fs::path& file, const std::string& group, bool verify) {
  return std::make_unique<ContainerSource>(file, group, verify);
}

}  // namespace ckptio::detail
