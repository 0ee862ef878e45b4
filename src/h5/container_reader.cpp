#include "h5/container_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <unordered_map>

#include "ckptio/error.hpp"
#include "core/checksum.hpp"
#include "core/piece_math.hpp"
#include "core/regular_file.hpp"
#include "h5/container_format.hpp"
#include "h5/h5_handle.hpp"
#include "h5/h5_types.hpp"
#include "h5/h5_util.hpp"
#include "h5/raw_io.hpp"

namespace ckptio::detail::h5 {
namespace {

// Once the file is open, an HDF5 failure while reading it means damaged input (a bad
// metadata checksum, a truncated object), so it becomes a FormatError naming the file.
template <class F>
auto reading(const std::string& path, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const IoError& e) {
    const std::string what = e.what();
    throw FormatError(what.find(path) == std::string::npos ? path + ": " + what + " (damaged file?)"
                                                           : what + " (damaged file?)");
  } catch (const FormatError& e) {  // from helpers that do not know the file (attributes)
    const std::string what = e.what();
    if (what.find(path) != std::string::npos) throw;
    throw FormatError(path + ": " + what);
  }
}

std::string link_kind(H5L_type_t type) {
  switch (type) {
    case H5L_TYPE_SOFT:
      return "a soft link";
    case H5L_TYPE_EXTERNAL:
      return "an external link (to another file)";
    default:
      return "a user-defined link";
  }
}

}  // namespace

void check_index_checksum(const RootAttributes& attributes, const std::string& json_text, const std::string& file) {
  if (attributes.index_xxh3.empty()) return;
  if (to_hex64(xxh3_64(json_text.data(), json_text.size())) != attributes.index_xxh3)
    throw IntegrityError(file + ": the index does not match its checksum (root attribute " + kAttrIndexXxh3 + ")");
}

class ContainerReader::Impl {
 public:
  using BlockRequest = ContainerReader::BlockRequest;
  Impl(MPI_Comm comm, const std::string& path);
  ~Impl();
  int format_version() const { return format_version_; }
  std::uint64_t file_bytes() const { return end_of_file_; }
  const RootAttributes& root_attributes() const { return attributes_; }
  std::string read_bytes(const char* path, std::uint64_t max_bytes);
  ContainerIndex read_index(std::uint64_t max_bytes);
  std::string read_bytes_range(const char* path, std::uint64_t offset, std::uint64_t bytes);
  std::uint64_t dataset_elements(const char* path);
  std::vector<std::uint64_t> read_u64(const char* path, std::uint64_t max_elements);
  void read_block(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                  const Block& block, void* out);
  void read_stored_block(const IndexTensor& tensor, const Block& block, void* out);
  void plan_reads(const std::vector<BlockRequest>& requests);
  void enable_direct_io() { direct_.enable_direct_io(); }
  bool direct_io() const { return direct_.direct_io(); }
  void close();

 private:
  struct PackedDataset {
    Handle dataset;
    std::uint64_t bytes = 0;
    std::optional<std::uint64_t> address;  // of the raw data, when it can be read directly
  };
  struct PackedTensor {
    PackedDataset* packed = nullptr;
    std::uint64_t offset = 0;
    DType dtype = DType::F32;
    Shape shape;
  };
  // A packed tensor of the index, as locate_packed found it: its "/group/name" is
  // packed_names_[name_at, name_at + name_size), its shape packed_dims_[dims_at, + dims).
  struct PackedRecord {
    PackedDataset* packed = nullptr;
    std::uint64_t offset = 0;
    std::size_t name_at = 0, name_size = 0, dims_at = 0, dims = 0;
    DType dtype = DType::F32;
  };
  struct OpenDataset {
    Handle dataset;  // none for a packed tensor
    Handle type;
    std::optional<std::uint64_t> address;  // of the raw data, when it can be read directly
    Shape shape;
    std::size_t esz = 0;
    const PackedTensor* packed = nullptr;
  };
  struct FreeBytes {
    void operator()(char* p) const { std::free(p); }
  };
  struct Window {
    std::uint64_t begin = 0, end = 0;         // file addresses
    std::unique_ptr<char, FreeBytes> buffer;  // null until first used, and again once evicted
    char* data = nullptr;                     // the bytes at begin, inside buffer
  };
  void read_raw(std::uint64_t address, std::uint64_t bytes, void* out);
  // Records where the index's packed tensors lie, after checking that each lies inside its
  // group's packed dataset.
  void locate_packed(const ContainerIndex& index);
  PackedDataset& packed_dataset(const std::string& group);
  // Bytes [at, at + bytes) of a packed dataset.
  void read_packed(const PackedDataset& packed, std::uint64_t at, std::uint64_t bytes, char* out);
  // The packed dataset of an index tensor with a packed offset, its bytes checked to lie inside.
  PackedDataset& packed_of(const IndexTensor& tensor);
  // The packed tensor "/group/name" (`where`), or null: looked up by name only for read_block,
  // so the map by name is built on its first use.
  const PackedTensor* find_packed(const std::string& where);
  void plan_reads_unchecked(const std::vector<BlockRequest>& requests);
  // `maybe_packed` false: the caller knows from the index that the tensor has a dataset of
  // its own, so the map of packed tensors by name is not consulted (nor built).
  OpenDataset& open_tensor(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                           bool maybe_packed = true);
  Handle open_dataset(const char* path);
  // `name` under `location`; `path` names it in messages.
  Handle open_dataset_in(hid_t location, const char* name, const std::string& path);
  hid_t tensor_group(const std::string& group, const std::string& where);
  void read_header();
  // Throws FormatError when /model, /optimizer, /ema or /_ckptio is not a hard link.
  void check_top_level_links();
  // Throws FormatError unless the dataset's data lie in this file, contiguous (or compact)
  // and inside its end: no external storage, virtual or chunked layout.
  void check_storage(hid_t dataset, const std::string& where) const;
  std::string read_bytes_unchecked(const char* path, std::uint64_t max_bytes);
  std::string read_bytes_range_unchecked(const char* path, std::uint64_t offset, std::uint64_t bytes);
  std::uint64_t dataset_elements_unchecked(const char* path);
  std::vector<std::uint64_t> read_u64_unchecked(const char* path, std::uint64_t max_elements);
  void read_block_unchecked(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                            const Block& block, void* out, bool maybe_packed = true);

  std::string path_;
  Handle file_;
  int format_version_ = 0;
  RootAttributes attributes_;
  // By "/group/name"; hashed, for containers of many tensors (elements never move).
  std::unordered_map<std::string, OpenDataset> tensors_;
  std::map<std::string, Handle> groups_;                  // tensor groups, opened once
  std::map<std::string, PackedDataset> packed_datasets_;  // by group
  std::vector<PackedRecord> packed_records_;              // the index's packed tensors (locate_packed)
  std::string packed_names_;                              // their "/group/name"s, one after the other
  std::vector<std::int64_t> packed_dims_;                 // their shapes, one after the other
  // By "/group/name" (views into packed_names_), built on the first find_packed.
  std::unordered_map<std::string_view, std::size_t> packed_by_name_;
  std::unordered_map<std::size_t, PackedTensor> packed_tensors_;  // by record, as read_block used them
  RawFile raw_file_;
  DirectReader direct_{raw_file_, path_};  // reads of tensor data through raw_file_ or O_DIRECT
  std::uint64_t end_of_file_ = 0;
  std::vector<Window> windows_;             // sorted, disjoint
  std::deque<std::size_t> loaded_windows_;  // windows_ holding data, oldest first
  std::uint64_t loaded_bytes_ = 0;          // their bytes
};

ContainerReader::Impl::Impl(MPI_Comm comm, const std::string& path) : path_(path) {
  silence_hdf5_errors();
  // HDF5 opens the path itself: check first that it is no FIFO or device (which would block).
  require_regular_file(path, "checkpoint");
  Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), "create file access list");
  // Each rank opens the file on its own (MPI_COMM_SELF): reads are independent anyway, and
  // HDF5 makes some calls collective over the file's communicator whatever the data, e.g.
  // H5Dopen of a virtual dataset or of an external link (an MPI_Comm_dup). On a shared
  // communicator one rank opening such a dataset alone would wait forever for the others;
  // on MPI_COMM_SELF it reaches the check that refuses the dataset, and the failure is
  // agreed by the caller like any other.
  if (comm != MPI_COMM_NULL)
    check(H5Pset_fapl_mpio(fapl.get(), MPI_COMM_SELF, MPI_INFO_NULL), "select the MPI-IO driver");
  // H5Fis_hdf5 only looks for the signature; each rank may call it on its own.
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    take_error_stack();
    throw FormatError(path + " is not an HDF5 file (or its superblock is damaged)");
  }
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file < 0) throw FormatError("cannot open " + path + " as HDF5 (damaged or truncated?): " + take_error_stack());
  file_ = Handle(file);
  reading(path, [&] {
    read_header();
    check_top_level_links();
  });
  raw_file_ = RawFile(file_.get());
  // Direct reads stay inside the file; beyond its end HDF5 reports the damage.
  hsize_t file_size = 0;
  if (H5Fget_filesize(file_.get(), &file_size) >= 0) {
    end_of_file_ = static_cast<std::uint64_t>(file_size);
  } else {
    take_error_stack();
    raw_file_ = RawFile();
  }
}

void ContainerReader::Impl::check_top_level_links() {
  // A group reached through a soft or external link could lead into another file, whose
  // opening under MPI-IO is collective: refused before any rank opens anything in it.
  for (const char* name : {"model", "optimizer", "ema", "_ckptio"}) {
    const htri_t exists = H5Lexists(file_.get(), name, H5P_DEFAULT);
    if (exists < 0) take_error_stack();
    if (exists <= 0) continue;
    H5L_info_t info{};
    if (H5Lget_info(file_.get(), name, &info, H5P_DEFAULT) < 0)
      throw FormatError(path_ + ": cannot read the link /" + std::string(name) + ": " + take_error_stack());
    if (info.type != H5L_TYPE_HARD)
      throw FormatError(path_ + ": /" + std::string(name) + " is " + link_kind(info.type) +
                        ", which ckptio never writes and does not follow");
  }
}

void ContainerReader::Impl::check_storage(hid_t dataset, const std::string& where) const {
  Handle dcpl = checked(H5Dget_create_plist(dataset), "get the creation properties of " + where);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_VIRTUAL)
    throw FormatError(path_ + ": dataset " + where +
                      " is a virtual dataset (its data would be read from other files), which ckptio never writes");
  if (H5Pget_external_count(dcpl.get()) != 0)
    throw FormatError(path_ + ": dataset " + where +
                      " keeps its data in external files, which ckptio never writes and does not read");
  if (layout == H5D_CHUNKED)
    throw FormatError(path_ + ": dataset " + where +
                      " is chunked; ckptio writes contiguous datasets only (the size of chunked, possibly compressed, "
                      "data cannot be checked against the file)");
  if (layout != H5D_CONTIGUOUS && layout != H5D_COMPACT)
    throw FormatError(path_ + ": dataset " + where + " has an unknown storage layout");
  if (layout != H5D_CONTIGUOUS || end_of_file_ == 0) return;
  // Its bytes lie in the file: a declared size beyond its end is damage, found before
  // anything is allocated for it.
  const haddr_t address = H5Dget_offset(dataset);
  if (address == HADDR_UNDEF) {
    take_error_stack();  // not allocated: nothing stored
    return;
  }
  const auto bytes = static_cast<std::uint64_t>(H5Dget_storage_size(dataset));
  if (address > end_of_file_ || bytes > end_of_file_ - address)
    throw FormatError(path_ + ": dataset " + where + " claims " + std::to_string(bytes) + " bytes at offset " +
                      std::to_string(address) + ", beyond the end of the file (" + std::to_string(end_of_file_) +
                      " bytes): truncated or damaged");
}

void ContainerReader::Impl::read_header() {
  const hid_t file = file_.get();
  const std::string& path = path_;
  const auto format = read_string_attribute(file, kAttrFormat);
  const auto version = read_int_attribute(file, kAttrFormatVersion);
  if (!format || *format != kFormatName || !version)
    throw FormatError(path + " is an HDF5 file but not a ckptio container (no '" + std::string(kAttrFormat) +
                      "' attribute)");
  if (*version < 1 || *version > kFormatVersion)
    throw FormatError(path + " has container format version " + std::to_string(*version) +
                      "; this ckptio reads versions 1 to " + std::to_string(kFormatVersion) +
                      (*version > kFormatVersion ? " (written by a newer ckptio: upgrade to read it)" : ""));
  format_version_ = static_cast<int>(*version);
  attributes_.library_version = read_string_attribute(file, kAttrLibraryVersion).value_or("");
  attributes_.created = read_string_attribute(file, kAttrCreated).value_or("");
  attributes_.host = read_string_attribute(file, kAttrHost).value_or("");
  attributes_.world_size = read_int_attribute(file, kAttrWorldSize).value_or(0);
  attributes_.epoch = read_int_attribute(file, kAttrEpoch).value_or(0);
  attributes_.step = read_int_attribute(file, kAttrStep).value_or(0);
  attributes_.global_step = read_int_attribute(file, kAttrGlobalStep).value_or(0);
  attributes_.index_xxh3 = read_string_attribute(file, kAttrIndexXxh3).value_or("");
}

ContainerReader::Impl::~Impl() {
  windows_.clear();
  tensors_.clear();
  packed_tensors_.clear();
  packed_by_name_.clear();
  packed_records_.clear();
  packed_datasets_.clear();
  groups_.clear();
  file_.reset();
}

Handle ContainerReader::Impl::open_dataset(const char* path) { return open_dataset_in(file_.get(), path, path); }

Handle ContainerReader::Impl::open_dataset_in(hid_t location, const char* name, const std::string& path) {
  // The link first: opening an external link would open another file (collectively under
  // MPI-IO, on this rank only), a soft link could lead there too. H5Lget_info does not
  // follow the link it describes.
  H5L_info_t info{};
  if (H5Lget_info(location, name, &info, H5P_DEFAULT) < 0) {
    take_error_stack();
    throw FormatError(path_ + " has no dataset " + path);
  }
  if (info.type != H5L_TYPE_HARD)
    throw FormatError(path_ + ": " + path + " is " + link_kind(info.type) +
                      ", which ckptio never writes and does not follow");
  const hid_t dset = H5Dopen2(location, name, H5P_DEFAULT);
  if (dset < 0) throw IoError("open " + path + " in " + path_ + ": " + take_error_stack());
  Handle handle(dset);
  check_storage(handle.get(), path);
  return handle;
}

hid_t ContainerReader::Impl::tensor_group(const std::string& group, const std::string& where) {
  if (auto it = groups_.find(group); it != groups_.end()) return it->second.get();
  const std::string path = "/" + group;
  const htri_t exists = H5Lexists(file_.get(), path.c_str(), H5P_DEFAULT);
  if (exists <= 0) {
    take_error_stack();
    throw FormatError(path_ + " has no dataset " + where);
  }
  Handle g = checked(H5Gopen2(file_.get(), path.c_str(), H5P_DEFAULT), "open " + path + " in " + path_);
  return groups_.emplace(group, std::move(g)).first->second.get();
}

std::uint64_t ContainerReader::Impl::dataset_elements(const char* path) {
  return reading(path_, [&] { return dataset_elements_unchecked(path); });
}

std::uint64_t ContainerReader::Impl::dataset_elements_unchecked(const char* path) {
  Handle dset = open_dataset(path);
  Handle space = checked(H5Dget_space(dset.get()), "get dataspace");
  if (H5Sget_simple_extent_ndims(space.get()) != 1)
    throw FormatError(std::string(path) + " in " + path_ + " is not 1-D");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) throw FormatError("cannot read the size of " + std::string(path) + " in " + path_);
  return static_cast<std::uint64_t>(n);
}

std::string ContainerReader::Impl::read_bytes(const char* path, std::uint64_t max_bytes) {
  return reading(path_, [&] { return read_bytes_unchecked(path, max_bytes); });
}

std::string ContainerReader::Impl::read_bytes_unchecked(const char* path, std::uint64_t max_bytes) {
  const std::uint64_t n = dataset_elements_unchecked(path);
  if (n > max_bytes)
    throw FormatError(std::string(path) + " in " + path_ + " claims " + std::to_string(n) +
                      " bytes, more than the limit of " + std::to_string(max_bytes));
  // Piece by piece: a declared size that the file does not really hold (a sparse region
  // reads as zeros) is found at its first piece, before memory for all of it is taken.
  constexpr std::uint64_t kPiece = 16ull << 20;
  std::string out;
  for (std::uint64_t offset = 0; offset < n; offset += kPiece) {
    std::string piece = read_bytes_range_unchecked(path, offset, std::min(kPiece, n - offset));
    if (const auto nul = piece.find('\0'); nul != std::string::npos)
      throw FormatError(std::string(path) + " in " + path_ + " has a NUL byte at offset " +
                        std::to_string(offset + nul) + ", which JSON text never has (damaged, or a hole in the file)");
    if (out.empty())
      out = std::move(piece);  // the whole text, in most indexes: no copy
    else
      out += piece;
  }
  return out;
}

ContainerIndex ContainerReader::Impl::read_index(std::uint64_t max_bytes) {
  const std::string json_text = read_bytes(kIndexDataset, max_bytes);
  check_index_checksum(attributes_, json_text, path_);
  ContainerIndex index = decode_index(json_text, path_);
  locate_packed(index);
  if (end_of_file_ == 0) return index;
  // Every dataset is contiguous in this file (check_storage): what the index declares must fit.
  const std::uint64_t declared = declared_data_bytes(index);
  if (declared > end_of_file_)
    throw FormatError(path_ + ": its index declares " + std::to_string(declared) +
                      " bytes of tensors, running state and rank blobs, more than the file's " +
                      std::to_string(end_of_file_) + " bytes: damaged or truncated");
  return index;
}

ContainerReader::Impl::PackedDataset& ContainerReader::Impl::packed_dataset(const std::string& group) {
  if (auto it = packed_datasets_.find(group); it != packed_datasets_.end()) return it->second;
  const std::string where = std::string(kPackedGroup) + "/" + group;
  PackedDataset packed;
  packed.dataset = open_dataset(where.c_str());
  Handle type = checked(H5Dget_type(packed.dataset.get()), "get type of " + where);
  Handle space = checked(H5Dget_space(packed.dataset.get()), "get dataspace of " + where);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1 ||
      H5Sget_simple_extent_ndims(space.get()) != 1 || n < 0)
    throw FormatError(path_ + ": " + where + " is not a 1-D byte dataset");
  packed.bytes = static_cast<std::uint64_t>(n);
  if (raw_file_.usable() && packed.bytes > 0) {
    packed.address = raw_data_address(packed.dataset.get());
    if (packed.address && (*packed.address > end_of_file_ || packed.bytes > end_of_file_ - *packed.address))
      packed.address.reset();
  }
  return packed_datasets_.emplace(group, std::move(packed)).first->second;
}

void ContainerReader::Impl::locate_packed(const ContainerIndex& index) {
  packed_tensors_.clear();
  packed_by_name_.clear();
  packed_records_.clear();
  packed_names_.clear();
  packed_dims_.clear();
  std::size_t names = 0, dims = 0, records = 0;
  for (const auto& t : index.tensors) {
    if (!t.packed_offset) continue;
    ++records;
    names += 2 + t.group.size() + t.name.size();
    dims += t.shape.size();
  }
  packed_records_.reserve(records);
  packed_names_.reserve(names);
  packed_dims_.reserve(dims);
  for (const auto& t : index.tensors) {
    if (!t.packed_offset) continue;
    PackedRecord record;
    record.packed = &packed_of(t);
    record.offset = *t.packed_offset;
    record.dtype = t.dtype;
    record.name_at = packed_names_.size();
    packed_names_.append("/").append(t.group).append("/").append(t.name);
    record.name_size = packed_names_.size() - record.name_at;
    record.dims_at = packed_dims_.size();
    record.dims = t.shape.size();
    packed_dims_.insert(packed_dims_.end(), t.shape.begin(), t.shape.end());
    packed_records_.push_back(record);
  }
}

ContainerReader::Impl::PackedDataset& ContainerReader::Impl::packed_of(const IndexTensor& t) {
  const auto where = [&] { return "/" + t.group + "/" + t.name; };
  if (format_version_ < 2)
    throw FormatError(path_ + ": tensor " + where() + " is packed, which container format version " +
                      std::to_string(format_version_) + " does not have");
  PackedDataset& packed = reading(path_, [&]() -> PackedDataset& { return packed_dataset(t.group); });
  // decode_index checked that the byte count fits in 63 bits, and the offset too.
  const auto bytes = static_cast<std::uint64_t>(element_count(t.shape)) * dtype_size(t.dtype);
  const std::uint64_t offset = *t.packed_offset;
  if (offset > packed.bytes || bytes > packed.bytes - offset)
    throw FormatError(path_ + ": tensor " + where() + " claims bytes [" + std::to_string(offset) + ", " +
                      std::to_string(offset + bytes) + ") of " + kPackedGroup + "/" + t.group + ", which holds " +
                      std::to_string(packed.bytes) + " bytes: damaged");
  return packed;
}

const ContainerReader::Impl::PackedTensor* ContainerReader::Impl::find_packed(const std::string& where) {
  if (packed_by_name_.empty() && !packed_records_.empty()) {
    packed_by_name_.reserve(packed_records_.size());
    for (std::size_t i = 0; i < packed_records_.size(); ++i)
      packed_by_name_.emplace(
          std::string_view(packed_names_).substr(packed_records_[i].name_at, packed_records_[i].name_size), i);
  }
  const auto it = packed_by_name_.find(where);
  if (it == packed_by_name_.end()) return nullptr;
  if (const auto made = packed_tensors_.find(it->second); made != packed_tensors_.end()) return &made->second;
  const PackedRecord& r = packed_records_[it->second];
  const auto dims = packed_dims_.begin() + static_cast<std::ptrdiff_t>(r.dims_at);
  return &packed_tensors_
              .emplace(it->second, PackedTensor{r.packed, r.offset, r.dtype,
                                                Shape(dims, dims + static_cast<std::ptrdiff_t>(r.dims))})
              .first->second;
}

void ContainerReader::Impl::read_packed(const PackedDataset& packed, std::uint64_t at, std::uint64_t bytes, char* out) {
  if (bytes == 0) return;
  if (packed.address) {
    read_raw(*packed.address + at, bytes, out);
    return;
  }
  const hid_t dset = packed.dataset.get();
  Handle space = checked(H5Dget_space(dset), "get dataspace");
  select_block(space.get(), Block{{static_cast<std::int64_t>(at)}, {static_cast<std::int64_t>(bytes)}});
  Handle mem = make_dataspace({static_cast<std::int64_t>(bytes)}, "memory dataspace");
  check(H5Dread(dset, H5T_NATIVE_UCHAR, mem.get(), space.get(), H5P_DEFAULT, out), "read packed tensors of " + path_);
}

std::string ContainerReader::Impl::read_bytes_range(const char* path, std::uint64_t offset, std::uint64_t bytes) {
  return reading(path_, [&] { return read_bytes_range_unchecked(path, offset, bytes); });
}

std::string ContainerReader::Impl::read_bytes_range_unchecked(const char* path, std::uint64_t offset,
                                                              std::uint64_t bytes) {
  std::string out(bytes, '\0');
  if (bytes == 0) return out;
  Handle dset = open_dataset(path);
  Handle space = checked(H5Dget_space(dset.get()), "get dataspace");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || offset > static_cast<std::uint64_t>(n) || bytes > static_cast<std::uint64_t>(n) - offset)
    throw FormatError("range beyond the end of " + std::string(path) + " in " + path_);
  select_block(space.get(), Block{{static_cast<std::int64_t>(offset)}, {static_cast<std::int64_t>(bytes)}});
  Handle mem = make_dataspace({static_cast<std::int64_t>(bytes)}, "memory dataspace");
  check(H5Dread(dset.get(), H5T_NATIVE_UCHAR, mem.get(), space.get(), H5P_DEFAULT, out.data()),
        "read " + std::string(path) + " in " + path_);
  return out;
}

std::vector<std::uint64_t> ContainerReader::Impl::read_u64(const char* path, std::uint64_t max_elements) {
  return reading(path_, [&] { return read_u64_unchecked(path, max_elements); });
}

std::vector<std::uint64_t> ContainerReader::Impl::read_u64_unchecked(const char* path, std::uint64_t max_elements) {
  const std::uint64_t n = dataset_elements_unchecked(path);
  if (n > max_elements) throw FormatError(std::string(path) + " in " + path_ + " is too large");
  std::vector<std::uint64_t> out(n);
  if (n == 0) return out;
  Handle dset = open_dataset(path);
  check(H5Dread(dset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
        "read " + std::string(path) + " in " + path_);
  return out;
}

ContainerReader::Impl::OpenDataset& ContainerReader::Impl::open_tensor(const std::string& group,
                                                                       const std::string& name, DType dtype,
                                                                       const Shape& shape, bool maybe_packed) {
  const std::string where = "/" + group + "/" + name;
  if (auto it = tensors_.find(where); it != tensors_.end()) return it->second;
  OpenDataset ds;
  if (const PackedTensor* packed = maybe_packed ? find_packed(where) : nullptr) {
    const PackedTensor& p = *packed;
    if (p.dtype != dtype || p.shape != shape)
      throw FormatError("tensor " + where + " in " + path_ + " is packed as " + std::string(dtype_name(p.dtype)) + " " +
                        shape_to_string(p.shape) + ", not as " + std::string(dtype_name(dtype)) + " " +
                        shape_to_string(shape));
    ds.packed = &p;
    ds.shape = shape;
    ds.esz = dtype_size(dtype);
    if (p.packed->address) ds.address = *p.packed->address + p.offset;  // inside the file: packed_dataset
    return tensors_.emplace(where, std::move(ds)).first->second;
  }
  ds.dataset = open_dataset_in(tensor_group(group, where), name.c_str(), where);
  ds.type = datatype_for(dtype);
  Handle file_type = checked(H5Dget_type(ds.dataset.get()), "get type of " + where);
  if (H5Tequal(file_type.get(), ds.type.get()) <= 0)
    throw FormatError("dataset " + where + " in " + path_ + " is not stored as " + std::string(dtype_name(dtype)) +
                      " as its index says");
  Handle space = checked(H5Dget_space(ds.dataset.get()), "get dataspace of " + where);
  const int ndims = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(ndims > 0 ? ndims : 0);
  if (ndims < 0 || H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
    throw FormatError("cannot read the shape of " + where + " in " + path_);
  const Shape file_shape(dims.begin(), dims.end());
  if (file_shape != shape)
    throw FormatError("dataset " + where + " in " + path_ + " has shape " + shape_to_string(file_shape) +
                      " but its index says " + shape_to_string(shape));
  if (raw_file_.usable()) {
    ds.address = raw_data_address(ds.dataset.get());
    ds.shape = shape;
    ds.esz = dtype_size(dtype);
    const auto bytes = static_cast<std::uint64_t>(element_count(shape)) * ds.esz;
    if (ds.address && (*ds.address > end_of_file_ || bytes > end_of_file_ - *ds.address)) ds.address.reset();
  }
  return tensors_.emplace(where, std::move(ds)).first->second;
}

void ContainerReader::Impl::plan_reads(const std::vector<BlockRequest>& requests) {
  reading(path_, [&] { plan_reads_unchecked(requests); });
}

void ContainerReader::Impl::plan_reads_unchecked(const std::vector<BlockRequest>& requests) {
  // Blocks up to kSmall bytes join windows; ranges at most kGap apart share one; a window
  // holds at most kWindow bytes. Every small block gets its window: windows are read when
  // first needed and the oldest are dropped while more than kHeld bytes are held (read_raw),
  // so memory stays bounded however many small tensors a rank loads.
  constexpr std::uint64_t kSmall = 64 << 10, kGap = 16 << 10, kWindow = 8 << 20;
  windows_.clear();
  loaded_windows_.clear();
  loaded_bytes_ = 0;
  if (!raw_file_.usable()) return;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // begin, end
  ranges.reserve(requests.size());
  for (const auto& r : requests) {
    const IndexTensor& t = *r.tensor;
    std::optional<std::uint64_t> address;
    if (t.packed_offset) {
      const PackedDataset& packed = packed_of(t);
      if (packed.address) address = *packed.address + *t.packed_offset;
    } else {
      address = open_tensor(t.group, t.name, t.dtype, t.shape, false).address;
    }
    if (!address) continue;
    const auto range = contiguous_range(t.shape, *r.block, dtype_size(t.dtype));
    if (!range || range->bytes == 0 || range->bytes > kSmall) continue;
    ranges.emplace_back(*address + range->offset, *address + range->offset + range->bytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (const auto& [begin, end] : ranges) {
    if (!windows_.empty() && begin <= windows_.back().end + kGap && end - windows_.back().begin <= kWindow)
      windows_.back().end = std::max(windows_.back().end, end);
    else
      windows_.push_back({begin, end, {}});
  }
  // A window of one range saves nothing.
  std::erase_if(windows_, [&](const Window& w) {
    const auto first = std::lower_bound(ranges.begin(), ranges.end(), std::make_pair(w.begin, std::uint64_t{0}));
    return first + 1 >= ranges.end() || (first + 1)->first >= w.end;
  });
  // Read direct, a window is whole aligned units, which come from the device into its
  // buffer without passing through the page cache (or a copy out of it).
  if (!direct_.direct_io()) return;
  constexpr std::uint64_t kAlign = kDirectIoAlignment;
  for (std::size_t i = 0; i < windows_.size(); ++i) {
    Window& w = windows_[i];
    w.begin = std::max(w.begin / kAlign * kAlign, i > 0 ? windows_[i - 1].end : 0);
    w.end = (w.end + kAlign - 1) / kAlign * kAlign;
  }
}

void ContainerReader::Impl::read_raw(std::uint64_t address, std::uint64_t bytes, void* out) {
  auto it = std::upper_bound(windows_.begin(), windows_.end(), address,
                             [](std::uint64_t a, const Window& w) { return a < w.begin; });
  if (it != windows_.begin()) {
    Window& w = *std::prev(it);
    if (address >= w.begin && address + bytes <= w.end) {
      if (!w.data) {
        constexpr std::uint64_t kHeld = 32 << 20;
        const std::uint64_t size = w.end - w.begin;
        while (!loaded_windows_.empty() && loaded_bytes_ + size > kHeld) {
          Window& oldest = windows_[loaded_windows_.front()];
          loaded_bytes_ -= oldest.end - oldest.begin;
          oldest.buffer.reset();
          oldest.data = nullptr;
          loaded_windows_.pop_front();
        }
        // The bytes sit in the buffer as they sit in the file relative to the direct I/O
        // alignment, so that their aligned middle is read straight into it.
        constexpr std::uint64_t kAlign = kDirectIoAlignment;
        const std::uint64_t lead = w.begin % kAlign;
        std::unique_ptr<char, FreeBytes> buffer(
            static_cast<char*>(std::aligned_alloc(kAlign, (lead + size + kAlign - 1) / kAlign * kAlign)));
        if (!buffer) throw std::bad_alloc();
        direct_.read(w.begin, buffer.get() + lead, size);
        w.buffer = std::move(buffer);
        w.data = w.buffer.get() + lead;
        loaded_windows_.push_back(static_cast<std::size_t>(&w - windows_.data()));
        loaded_bytes_ += size;
      }
      std::memcpy(out, w.data + (address - w.begin), bytes);
      return;
    }
  }
  direct_.read(address, out, bytes);
}

void ContainerReader::Impl::read_block(const std::string& group, const std::string& name, DType dtype,
                                       const Shape& shape, const Block& block, void* out) {
  reading(path_, [&] { read_block_unchecked(group, name, dtype, shape, block, out); });
}

void ContainerReader::Impl::read_block_unchecked(const std::string& group, const std::string& name, DType dtype,
                                                 const Shape& shape, const Block& block, void* out, bool maybe_packed) {
  OpenDataset& ds = open_tensor(group, name, dtype, shape, maybe_packed);
  if (ds.address) {
    if (const auto range = contiguous_range(ds.shape, block, ds.esz)) {
      if (range->bytes > 0) read_raw(*ds.address + range->offset, range->bytes, out);
      return;
    }
  }
  if (ds.packed) {
    if (block.count.size() != ds.shape.size() || block.offset.size() != ds.shape.size())
      throw UsageError("read_block: the block's rank differs from the tensor's");
    for (std::size_t d = 0; d < ds.shape.size(); ++d)
      if (block.offset[d] < 0 || block.count[d] < 0 || block.offset[d] > ds.shape[d] ||
          block.count[d] > ds.shape[d] - block.offset[d])
        throw UsageError("read_block: block " + describe_block(block) + " lies outside /" + group + "/" + name);
    char* bytes = static_cast<char*>(out);
    for_each_run(ds.shape, block, ds.esz, [&](std::uint64_t at, std::uint64_t to, std::uint64_t n) {
      read_packed(*ds.packed->packed, ds.packed->offset + at, n, bytes + to);
    });
    return;
  }
  const std::string where = "/" + group + "/" + name;
  if (block.count.empty()) {
    check(H5Dread(ds.dataset.get(), ds.type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "read " + where);
    return;
  }
  Handle space = checked(H5Dget_space(ds.dataset.get()), "get dataspace");
  select_block(space.get(), block);
  Handle mem = make_dataspace({block_elements(block)}, "memory dataspace");
  check(H5Dread(ds.dataset.get(), ds.type.get(), mem.get(), space.get(), H5P_DEFAULT, out),
        "read block " + describe_block(block) + " of " + where + " in " + path_);
}

void ContainerReader::Impl::read_stored_block(const IndexTensor& tensor, const Block& block, void* out) {
  if (!tensor.packed_offset) {
    reading(path_,
            [&] { read_block_unchecked(tensor.group, tensor.name, tensor.dtype, tensor.shape, block, out, false); });
    return;
  }
  reading(path_, [&] {
    const PackedDataset& packed = packed_of(tensor);
    const Shape& shape = tensor.shape;
    const std::size_t esz = dtype_size(tensor.dtype);
    if (block.count.size() != shape.size() || block.offset.size() != shape.size())
      throw UsageError("read_block: the block's rank differs from the tensor's");
    for (std::size_t d = 0; d < shape.size(); ++d)
      if (block.offset[d] < 0 || block.count[d] < 0 || block.offset[d] > shape[d] ||
          block.count[d] > shape[d] - block.offset[d])
        throw UsageError("read_block: block " + describe_block(block) + " lies outside /" + tensor.group + "/" +
                         tensor.name);
    if (const auto range = contiguous_range(shape, block, esz)) {
      read_packed(packed, *tensor.packed_offset + range->offset, range->bytes, static_cast<char*>(out));
      return;
    }
    char* bytes = static_cast<char*>(out);
    for_each_run(shape, block, esz, [&](std::uint64_t at, std::uint64_t to, std::uint64_t n) {
      read_packed(packed, *tensor.packed_offset + at, n, bytes + to);
    });
  });
}

void ContainerReader::Impl::close() {
  windows_.clear();
  loaded_windows_.clear();
  loaded_bytes_ = 0;
  tensors_.clear();
  packed_tensors_.clear();
  packed_by_name_.clear();
  packed_records_.clear();
  packed_datasets_.clear();
  groups_.clear();
  std::string error;
  if (!file_.close(&error)) throw IoError("close " + path_ + ": " + error);
}

ContainerReader::ContainerReader(MPI_Comm comm, const std::string& path) : impl_(std::make_unique<Impl>(comm, path)) {}
ContainerReader::~ContainerReader() = default;
int ContainerReader::format_version() const { return impl_->format_version(); }
std::uint64_t ContainerReader::file_bytes() const { return impl_->file_bytes(); }
const RootAttributes& ContainerReader::root_attributes() const { return impl_->root_attributes(); }
std::string ContainerReader::read_bytes(const char* path, std::uint64_t max_bytes) {
  return impl_->read_bytes(path, max_bytes);
}
ContainerIndex ContainerReader::read_index(std::uint64_t max_bytes) { return impl_->read_index(max_bytes); }
std::string ContainerReader::read_bytes_range(const char* path, std::uint64_t offset, std::uint64_t bytes) {
  return impl_->read_bytes_range(path, offset, bytes);
}
std::uint64_t ContainerReader::dataset_elements(const char* path) { return impl_->dataset_elements(path); }
std::vector<std::uint64_t> ContainerReader::read_u64(const char* path, std::uint64_t max_elements) {
  return impl_->read_u64(path, max_elements);
}
void ContainerReader::read_block(const std::string& group, const std::string& name, DType dtype, const Shape& shape,
                                 const Block& block, void* out) {
  impl_->read_block(group, name, dtype, shape, block, out);
}
void ContainerReader::read_stored_block(const IndexTensor& tensor, const Block& block, void* out) {
  impl_->read_stored_block(tensor, block, out);
}
void ContainerReader::plan_reads(const std::vector<BlockRequest>& requests) { impl_->plan_reads(requests); }
void ContainerReader::enable_direct_io() { impl_->enable_direct_io(); }
bool ContainerReader::direct_io() const { return impl_->direct_io(); }
void ContainerReader::close() { impl_->close(); }

}  // namespace ckptio::detail::h5
