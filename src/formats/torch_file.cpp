#include "ckptio/torch_file.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <variant>

#include "ckptio/error.hpp"
#include "formats/byte_source.hpp"
#include "formats/torch_pickle.hpp"
#include "formats/zip_reader.hpp"

namespace ckptio {

using detail::formats::ByteSource;
using detail::formats::FileSource;
using detail::formats::MemorySource;
using detail::formats::ZipEntry;
using detail::formats::ZipReader;

namespace {

// A non-contiguous view whose storage span is at most this large is read in one go and
// gathered in memory; a larger one is read run by run.
constexpr std::uint64_t kGatherSpanBytes = 256ULL << 20;
// A view may hold more elements than its storage (a stride-0 broadcast from expand()):
// reading it writes more bytes than the file holds. All such views of a file together may
// add at most this many bytes beyond their storages (docs/PYTORCH.md).
constexpr std::uint64_t kMaxViewExpansionBytes = 64ULL << 20;

bool is_contiguous(const Shape& shape, const std::vector<std::int64_t>& stride) {
  std::int64_t expected = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return true;
    if (shape[d] != 1 && stride[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

}  // namespace

struct TorchFile::Impl {
  std::unique_ptr<ByteSource> source;
  std::optional<ZipReader> zip;
  std::string folder;
  std::vector<TensorInfo> tensors;
  std::vector<std::uint64_t> tensor_data;  // where each tensor's storage bytes start in the file
  std::unordered_map<std::string, std::size_t> index;
  std::vector<std::pair<std::string, nlohmann::json>> values;

  const std::string& label() const { return source->label(); }
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(label() + ": " + what); }

  void open() {
    std::uint8_t head[16] = {};
    source->read(0, std::min<std::uint64_t>(source->size(), sizeof head), head);
    if (detail::formats::is_legacy_torch_file({head, std::min<std::size_t>(source->size(), sizeof head)})) {
      return open_legacy();
    }
    if (!detail::formats::looks_like_zip(*source)) {
      if (source->size() >= 2 && head[0] == 0x80 && head[1] <= 5) {
        fail("a pickle, not a torch.save file (neither a zip archive nor a legacy torch.save file)");
      }
      fail("not a PyTorch .pt file (not a zip archive)");
    }
    zip.emplace(*source);
    const auto& entries = zip->entries();
    if (entries.empty()) fail("the zip archive is empty");
    const std::string& first = entries.front().name;
    const std::size_t slash = first.find('/');
    if (slash == std::string::npos || slash == 0) fail("zip entry '" + first + "' is not inside a top-level folder");
    folder = first.substr(0, slash);
    const std::string prefix = folder + "/";
    for (const auto& entry : entries) {
      if (entry.name.compare(0, prefix.size(), prefix) != 0) {
        fail("the archive has more than one top-level folder ('" + folder + "' and the folder of '" + entry.name +
             "')");
      }
    }
    const ZipEntry* pickle = zip->find(prefix + "data.pkl");
    if (pickle == nullptr) {
      fail("the archive has no " + prefix + "data.pkl" +
           (zip->find(prefix + "constants.pkl") ? " (it looks like a TorchScript archive, which is not supported)"
                                                : std::string(" (not a torch.save file)")));
    }
    if (const ZipEntry* order = zip->find(prefix + "byteorder")) {
      const auto bytes = zip->read_entry(*order);
      const std::string text(bytes.begin(), bytes.end());
      if (text != "little") fail("byte order '" + text.substr(0, 16) + "' is not supported (only little-endian)");
    }
    const auto pickle_bytes = zip->read_entry(*pickle);
    auto parsed = detail::formats::unpickle_state_dict(pickle_bytes, label());
    // Where each storage's bytes start; only the storages that tensors use need an entry.
    std::unordered_map<std::string, std::uint64_t> offsets;
    for (const auto& t : parsed.tensors) {
      if (offsets.count(t.storage_key)) continue;
      const std::string entry_name = prefix + "data/" + t.storage_key;
      const ZipEntry* entry = zip->find(entry_name);
      if (entry == nullptr)
        fail("storage '" + t.storage_key + "' of tensor '" + t.name + "' has no entry " + entry_name);
      const std::uint64_t expected = t.storage_elements * dtype_size(t.dtype);  // checked by the unpickler
      if (entry->size != expected) {
        fail("storage '" + t.storage_key + "' declares " + std::to_string(t.storage_elements) + " elements of " +
             std::string(dtype_name(t.dtype)) + " (" + std::to_string(expected) + " bytes) but its entry " +
             entry_name + " holds " + std::to_string(entry->size) + " bytes");
      }
      offsets.emplace(t.storage_key, entry->data_offset);
    }
    add_tensors(std::move(parsed), offsets);
  }

  // PyTorch < 1.6: pickles at the start of the file, then each storage as an 8-byte element
  // count and its bytes. The pickles' length is unknown: parse a growing prefix.
  void open_legacy() {
    std::uint64_t prefix = std::min<std::uint64_t>(source->size(), 1 << 20);
    std::optional<detail::formats::LegacyPickles> parsed;
    while (!parsed) {
      const auto bytes = source->read_vector(0, prefix);
      try {
        parsed = detail::formats::unpickle_legacy(bytes, label());
      } catch (const detail::formats::TruncatedPickle&) {
        if (prefix == source->size()) throw;
        prefix = std::min<std::uint64_t>(source->size(), prefix * 4);
      }
    }
    std::unordered_map<std::string, const detail::formats::PickledStorage*> declared;
    for (const auto& storage : parsed->state.storages) declared.emplace(storage.key, &storage);
    std::unordered_map<std::string, std::uint64_t> offsets;
    std::uint64_t pos = parsed->data_offset;
    for (const std::string& key : parsed->storage_keys) {
      const auto& storage = *declared.at(key);  // the unpickler checked that every key is declared
      std::uint8_t count_bytes[8];
      source->require_range(pos, 8, ("the element count of storage '" + key + "'").c_str());
      source->read(pos, 8, count_bytes);
      std::uint64_t count = 0;
      for (int i = 7; i >= 0; --i) count = (count << 8) | count_bytes[i];
      if (count != storage.elements) {
        fail("storage '" + key + "' declares " + std::to_string(storage.elements) + " elements but its data holds " +
             std::to_string(count));
      }
      const std::uint64_t bytes = count * dtype_size(storage.dtype);  // checked by the unpickler
      source->require_range(pos + 8, bytes, ("the data of storage '" + key + "'").c_str());
      offsets.emplace(key, pos + 8);
      pos += 8 + bytes;
    }
    folder.clear();
    add_tensors(std::move(parsed->state), offsets);
  }

  void add_tensors(detail::formats::PickledStateDict parsed,
                   const std::unordered_map<std::string, std::uint64_t>& offsets) {
    values = std::move(parsed.values);
    std::uint64_t expansion = 0;
    for (const auto& t : parsed.tensors) {
      std::uint64_t elements = 1;
      for (const std::int64_t d : t.shape) elements *= static_cast<std::uint64_t>(d);  // checked by the unpickler
      if (elements <= t.storage_elements) continue;
      expansion += (elements - t.storage_elements) * dtype_size(t.dtype);
      if (expansion > kMaxViewExpansionBytes)
        fail("tensor '" + t.name + "' is a view of " + std::to_string(elements) + " elements on a storage of " +
             std::to_string(t.storage_elements) + " (a stride-0 broadcast?); such views may add at most " +
             std::to_string(kMaxViewExpansionBytes >> 20) + " MiB beyond the data the file holds");
    }
    for (auto& t : parsed.tensors) {
      TensorInfo info;
      info.format = TensorFormat::Torch;
      info.name = std::move(t.name);
      info.dtype = t.dtype;
      info.shape = std::move(t.shape);
      info.storage = t.storage_key;
      info.storage_offset = t.storage_offset;
      info.stride = std::move(t.stride);
      info.contiguous = is_contiguous(info.shape, info.stride);
      info.bytes = static_cast<std::uint64_t>(info.elements()) * dtype_size(info.dtype);
      if (!index.emplace(info.name, tensors.size()).second) fail("two tensors are both named '" + info.name + "'");
      const auto offset = offsets.find(t.storage_key);
      if (offset == offsets.end()) fail("storage '" + t.storage_key + "' of tensor '" + info.name + "' has no data");
      tensor_data.push_back(offset->second);
      tensors.push_back(std::move(info));
    }
    for (const auto& [name, value] : values) {
      if (index.count(name)) fail("'" + name + "' names both a tensor and a value");
    }
  }

  // Reads elements [begin, end) of a non-contiguous view.
  void gather(std::size_t i, std::int64_t begin, std::int64_t end, std::uint8_t* out) const {
    const TensorInfo& t = tensors[i];
    const std::uint64_t data = tensor_data[i];
    const std::size_t es = dtype_size(t.dtype);
    const std::size_t nd = t.shape.size();
    std::uint64_t span = 1;  // elements from storage_offset to the view's last element
    for (std::size_t d = 0; d < nd; ++d) span += static_cast<std::uint64_t>(t.shape[d] - 1) * t.stride[d];
    std::vector<std::uint8_t> window;
    const bool in_memory = span * es <= kGatherSpanBytes;
    if (in_memory) window = source->read_vector(data + t.storage_offset * es, span * es);
    // Multi-index of `begin`.
    std::vector<std::int64_t> idx(nd, 0);
    std::int64_t rest = begin;
    for (std::size_t d = nd; d-- > 0;) {
      idx[d] = rest % t.shape[d];
      rest /= t.shape[d];
    }
    for (std::int64_t n = begin; n < end; ++n) {
      std::uint64_t elem = 0;
      for (std::size_t d = 0; d < nd; ++d) elem += static_cast<std::uint64_t>(idx[d]) * t.stride[d];
      if (in_memory) {
        std::memcpy(out, window.data() + elem * es, es);
      } else {
        source->read(data + (t.storage_offset + elem) * es, es, out);
      }
      out += es;
      for (std::size_t d = nd; d-- > 0;) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
  }
};

TorchFile::TorchFile(const std::filesystem::path& path) : impl_(std::make_unique<Impl>()) {
  impl_->source = std::make_unique<FileSource>(path.string());
  impl_->open();
}

TorchFile::TorchFile(std::span<const std::uint8_t> bytes, std::string label) : impl_(std::make_unique<Impl>()) {
  impl_->source = std::make_unique<MemorySource>(bytes, std::move(label));
  impl_->open();
}

TorchFile::~TorchFile() = default;
TorchFile::TorchFile(TorchFile&&) noexcept = default;
TorchFile& TorchFile::operator=(TorchFile&&) noexcept = default;

const std::vector<TensorInfo>& TorchFile::tensors() const { return impl_->tensors; }

const TensorInfo* TorchFile::find(std::string_view name) const {
  const auto it = impl_->index.find(std::string(name));
  return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

const std::vector<std::pair<std::string, nlohmann::json>>& TorchFile::values() const { return impl_->values; }

const std::string& TorchFile::folder() const { return impl_->folder; }

void TorchFile::read_elements(std::size_t index, std::int64_t begin, std::int64_t end, void* out) const {
  if (index >= impl_->tensors.size()) throw UsageError("TorchFile::read_elements: no tensor " + std::to_string(index));
  const TensorInfo& t = impl_->tensors[index];
  if (begin < 0 || begin > end || end > t.elements()) {
    throw UsageError("TorchFile::read_elements: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") is outside tensor '" + t.name + "' (" + std::to_string(t.elements()) + " elements)");
  }
  if (begin == end) return;
  const std::size_t es = dtype_size(t.dtype);
  if (t.contiguous) {
    const std::uint64_t data = impl_->tensor_data[index];
    impl_->source->read(data + static_cast<std::uint64_t>(t.storage_offset + begin) * es,
                        static_cast<std::uint64_t>(end - begin) * es, out);
  } else {
    impl_->gather(index, begin, end, static_cast<std::uint8_t*>(out));
  }
}

void TorchFile::read_block(std::size_t index, const Block& block, void* out) const {
  if (index >= impl_->tensors.size()) throw UsageError("TorchFile::read_block: no tensor " + std::to_string(index));
  const TensorInfo& t = impl_->tensors[index];
  const std::size_t nd = t.shape.size();
  if (block.offset.size() != nd || block.count.size() != nd) {
    throw UsageError("TorchFile::read_block: the block's rank differs from tensor '" + t.name + "'");
  }
  std::int64_t rows = 1;
  for (std::size_t d = 0; d < nd; ++d) {
    if (block.offset[d] < 0 || block.count[d] < 0 || block.offset[d] > t.shape[d] - block.count[d]) {
      throw UsageError("TorchFile::read_block: the block is outside tensor '" + t.name + "'");
    }
    if (d + 1 < nd) rows *= block.count[d];
  }
  if (nd == 0) return read_elements(index, 0, 1, out);
  const std::int64_t row = block.count[nd - 1];
  if (rows == 0 || row == 0) return;
  const std::size_t es = dtype_size(t.dtype);
  auto* dst = static_cast<std::uint8_t*>(out);
  std::vector<std::int64_t> idx(nd - 1, 0);  // position inside the block, outer dimensions
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t flat = 0;
    for (std::size_t d = 0; d < nd; ++d) {
      flat = flat * t.shape[d] + block.offset[d] + (d + 1 < nd ? idx[d] : 0);
    }
    read_elements(index, flat, flat + row, dst);
    dst += static_cast<std::size_t>(row) * es;
    for (std::size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < block.count[d]) break;
      idx[d] = 0;
    }
  }
}

void TorchFile::read_piece(std::size_t index, DType dtype, const Shape& global_shape, const Piece& piece,
                           void* out) const {
  if (index >= impl_->tensors.size()) throw UsageError("TorchFile::read_piece: no tensor " + std::to_string(index));
  const TensorInfo& t = impl_->tensors[index];
  if (dtype != t.dtype) {
    throw MismatchError(impl_->label() + ": tensor '" + t.name + "' is " + std::string(dtype_name(t.dtype)) +
                        " in the file but " + std::string(dtype_name(dtype)) + " was requested");
  }
  if (global_shape != t.shape) {
    const auto text = [](const Shape& shape) {
      std::string out = "[";
      for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
      return out + "]";
    };
    throw MismatchError(impl_->label() + ": tensor '" + t.name + "' has shape " + text(t.shape) + " in the file but " +
                        text(global_shape) + " was requested");
  }
  if (const auto* range = std::get_if<FlatRange>(&piece)) {
    read_elements(index, range->begin, range->end, out);
  } else {
    read_block(index, std::get<Block>(piece), out);
  }
}

std::vector<std::uint8_t> TorchFile::read(std::size_t index) const {
  if (index >= impl_->tensors.size()) throw UsageError("TorchFile::read: no tensor " + std::to_string(index));
  std::vector<std::uint8_t> out(impl_->tensors[index].bytes);
  read_elements(index, 0, impl_->tensors[index].elements(), out.data());
  return out;
}

}  // namespace ckptio
