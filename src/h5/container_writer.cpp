#include "h5/container_writer.hpp"

#include <algorithm>
#include <map>
#include <optional>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "core/piece_math.hpp"
#include "h5/container_format.hpp"
#include "h5/h5_handle.hpp"
#include "h5/h5_types.hpp"
#include "h5/h5_util.hpp"
#include "h5/raw_io.hpp"

namespace ckptio::detail::h5 {

namespace {

// An MPI_Info holding `hints`, freed on destruction; MPI_INFO_NULL when there are none.
class InfoHints {
 public:
  explicit InfoHints(const std::map<std::string, std::string>& hints) {
    if (hints.empty()) return;
    MPI_Info_create(&info_);
    for (const auto& [key, value] : hints) MPI_Info_set(info_, key.c_str(), value.c_str());
  }
  ~InfoHints() {
    if (info_ != MPI_INFO_NULL) MPI_Info_free(&info_);
  }
  InfoHints(const InfoHints&) = delete;
  InfoHints& operator=(const InfoHints&) = delete;
  MPI_Info get() const { return info_; }

 private:
  MPI_Info info_ = MPI_INFO_NULL;
};

// Logs the value that the MPI-IO layer keeps for each requested hint ("key=value", or
// "key=(ignored)" when it dropped it): layers may ignore or adjust hints (cb_nodes is capped
// at the number of nodes, ROMIO-only keys mean nothing to OMPIO), and a silently ignored
// hint is hard to see otherwise.
void log_effective_hints(hid_t file, hid_t fapl, const std::map<std::string, std::string>& requested,
                         const std::string& path) {
  if (requested.empty() || !log_enabled(LogLevel::Info)) return;
  void* handle = nullptr;
  if (H5Fget_vfd_handle(file, fapl, &handle) < 0 || handle == nullptr) return;
  MPI_Info info = MPI_INFO_NULL;
  if (MPI_File_get_info(*static_cast<MPI_File*>(handle), &info) != MPI_SUCCESS) return;
  std::string effective;
  for (const auto& entry : requested) {
    char value[MPI_MAX_INFO_VAL + 1] = {};
    int found = 0;
    MPI_Info_get(info, entry.first.c_str(), MPI_MAX_INFO_VAL, value, &found);
    effective += " " + entry.first + "=" + (found ? std::string(value) : std::string("(ignored)"));
  }
  MPI_Info_free(&info);
  log_info("MPI-IO hints in effect for ", path, ":", effective);
}

}  // namespace

class ContainerWriter::Impl {
 public:
  Impl(MPI_Comm comm, const std::string& path, const FileTuning& tuning);
  ~Impl();
  void create_datasets(const std::vector<DatasetSpec>& specs);
  void write_block(std::size_t index, const Block& block, const void* data);
  void flush_blocks();
  void create_bytes_dataset(const char* path, std::uint64_t bytes);
  void write_bytes(const char* path, std::uint64_t offset, const void* data, std::uint64_t bytes);
  void create_u64_dataset(const char* path, std::uint64_t count);
  void write_u64(const char* path, const std::vector<std::uint64_t>& values);
  void write_root_attributes(const RootAttributes& attrs);
  void close();
  std::optional<std::uint64_t> packed_offset(std::size_t index) const { return raw_targets_.at(index).packed_offset; }

 private:
  Handle file_;
  Handle dxpl_independent_;
  std::vector<Handle> datasets_;
  std::vector<Handle> datatypes_;
  struct RawTarget {
    std::optional<std::uint64_t> address;  // of the raw data, when it can be written directly
    Shape shape;
    std::size_t esz = 0;
    std::optional<std::uint64_t> packed_offset;  // in packed_[packed_group]
    std::size_t packed_group = 0;
    // Bytes of alignment padding between the packed tensor before it and this one, which no
    // rank writes: a rank that wrote up to them may fill them to keep its writes one run.
    std::uint64_t padding_before = 0;
  };
  // Writes `bytes` at `offset` of a packed dataset: through MPI-IO when it can, else HDF5.
  // `padding_before`: the bytes just before `offset` are padding (see RawTarget).
  void write_packed(std::size_t group, std::uint64_t offset, const void* data, std::uint64_t bytes,
                    std::uint64_t padding_before);
  std::vector<RawTarget> raw_targets_;  // parallel to datasets_
  struct PackedDataset {
    Handle dataset;
    std::optional<std::uint64_t> address;
  };
  std::vector<PackedDataset> packed_;  // one per group with packed tensors
  std::uint64_t packed_max_bytes_ = 0;
  RawFile raw_file_;
  std::optional<CoalescingWriter> coalescing_;
  std::vector<Handle> groups_;
  std::vector<std::pair<std::string, Handle>> byte_datasets_;  // metadata datasets by path
  hid_t metadata_dataset(const char* path);
  std::string path_;
};

ContainerWriter::Impl::Impl(MPI_Comm comm, const std::string& path, const FileTuning& tuning)
    : packed_max_bytes_(tuning.packed_tensor_max_bytes), path_(path) {
  silence_hdf5_errors();
  Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), "create file access list");
  const InfoHints hints(tuning.mpi_io_hints);  // HDF5 copies the info
  check(H5Pset_fapl_mpio(fapl.get(), comm, hints.get()), "select the MPI-IO driver");
  if (tuning.alignment > 1)
    check(H5Pset_alignment(fapl.get(), tuning.alignment_threshold, tuning.alignment), "set dataset alignment");
  // V110 bounds: the 1.10 format, which h5py/h5dump of HDF5 1.10 read, and with which
  // damaged metadata was detected rather than hanging readers.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "set format bounds");
  // Metadata written collectively: fewer, larger writes than every rank writing its own.
  check(H5Pset_coll_metadata_write(fapl.get(), true), "set collective metadata writes");
  file_ = checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "create " + path);
  log_effective_hints(file_.get(), fapl.get(), tuning.mpi_io_hints, path);
  dxpl_independent_ = checked(H5Pcreate(H5P_DATASET_XFER), "create transfer list");
  check(H5Pset_dxpl_mpio(dxpl_independent_.get(), H5FD_MPIO_INDEPENDENT), "set independent transfers");
  raw_file_ = RawFile(file_.get());
  if (raw_file_.usable()) {
    coalescing_.emplace(raw_file_, path);
    if (tuning.direct_io) coalescing_->enable_direct_io();
  }
  groups_.push_back(checked(H5Gcreate2(file_.get(), kMetaGroup, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "create group " + std::string(kMetaGroup) + " in " + path));
}

ContainerWriter::Impl::~Impl() {
  // Normal paths call close(); this only runs when unwinding, where every rank unwinds
  // through the same agreed failure, so the collective close still matches.
  datasets_.clear();
  packed_.clear();
  byte_datasets_.clear();
  groups_.clear();
  datatypes_.clear();
  file_.reset();
}

void ContainerWriter::Impl::create_datasets(const std::vector<DatasetSpec>& specs) {
  std::map<std::string, hid_t> made;  // group -> its handle: datasets are created relative to it
  for (const auto& s : specs) {
    if (made.count(s.group)) continue;
    groups_.push_back(checked(H5Gcreate2(file_.get(), ("/" + s.group).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                              "create group /" + s.group + " in " + path_));
    made.emplace(s.group, groups_.back().get());
  }
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), "create dataset creation list");
  // Every element is written by some rank, so the fill pass (~40% of write time) is waste.
  check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "set fill time");
  check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "set allocation time");
  // Small tensors first: their places in the packed datasets of their groups, each writing
  // rank's tensors together (in spec order among them), so that a rank's pieces are
  // adjacent in the file rather than interleaved with every other rank's.
  raw_targets_.resize(specs.size());
  std::vector<std::string> packed_groups;  // in order of first appearance
  std::vector<std::uint64_t> packed_bytes;
  std::vector<std::size_t> packed_specs;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    RawTarget& target = raw_targets_[i];
    target.shape = s.shape;
    target.esz = dtype_size(s.dtype);
    const auto bytes = static_cast<std::uint64_t>(element_count(s.shape)) * target.esz;
    if (packed_max_bytes_ == 0 || bytes > packed_max_bytes_) continue;  // 0: none, not even empty ones
    auto g = std::find(packed_groups.begin(), packed_groups.end(), s.group);
    if (g == packed_groups.end()) {
      packed_groups.push_back(s.group);
      packed_bytes.push_back(0);
      g = packed_groups.end() - 1;
    }
    target.packed_group = static_cast<std::size_t>(g - packed_groups.begin());
    packed_specs.push_back(i);
  }
  std::stable_sort(packed_specs.begin(), packed_specs.end(), [&](std::size_t a, std::size_t b) {
    const auto ga = raw_targets_[a].packed_group, gb = raw_targets_[b].packed_group;
    return ga != gb ? ga < gb : specs[a].writer < specs[b].writer;
  });
  for (const std::size_t i : packed_specs) {
    RawTarget& target = raw_targets_[i];
    std::uint64_t& end = packed_bytes[target.packed_group];
    const std::uint64_t aligned = (end + kPackedAlignment - 1) / kPackedAlignment * kPackedAlignment;
    target.padding_before = aligned - end;
    target.packed_offset = end = aligned;
    end += static_cast<std::uint64_t>(element_count(target.shape)) * target.esz;
  }
  if (!packed_groups.empty())
    groups_.push_back(checked(H5Gcreate2(file_.get(), kPackedGroup, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                              "create group " + std::string(kPackedGroup) + " in " + path_));
  for (std::size_t g = 0; g < packed_groups.size(); ++g) {
    const std::string where = std::string(kPackedGroup) + "/" + packed_groups[g];
    Handle space = make_dataspace({static_cast<std::int64_t>(packed_bytes[g])}, "dataspace for " + where);
    Handle dset =
        checked(H5Dcreate2(file_.get(), where.c_str(), H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                "create dataset " + where + " in " + path_);
    const auto address = coalescing_ && packed_bytes[g] > 0 ? raw_data_address(dset.get()) : std::nullopt;
    packed_.push_back({std::move(dset), address});
  }
  datasets_.resize(specs.size());
  datatypes_.resize(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    RawTarget& target = raw_targets_[i];
    if (target.packed_offset) {
      const auto& packed = packed_[target.packed_group];
      if (packed.address) target.address = *packed.address + *target.packed_offset;
      continue;
    }
    const std::string where = "/" + s.group + "/" + s.name;
    Handle type = datatype_for(s.dtype);
    Handle space = make_dataspace(s.shape, "dataspace for " + where);
    Handle dset = checked(
        H5Dcreate2(made.at(s.group), s.name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
        "create dataset " + where + " in " + path_);
    write_string_attribute(dset.get(), kAttrDType, std::string(dtype_name(s.dtype)));
    // Contiguous, allocated now and never filled: HDF5 writes nothing more into its data.
    if (coalescing_) target.address = raw_data_address(dset.get());
    datasets_[i] = std::move(dset);
    datatypes_[i] = std::move(type);
  }
}

void ContainerWriter::Impl::write_packed(std::size_t group, std::uint64_t offset, const void* data, std::uint64_t bytes,
                                         std::uint64_t padding_before) {
  if (bytes == 0) return;
  const PackedDataset& packed = packed_.at(group);
  if (packed.address) {
    coalescing_->write(*packed.address + offset, data, bytes, padding_before);
    return;
  }
  Handle file_space = checked(H5Dget_space(packed.dataset.get()), "get dataspace");
  select_block(file_space.get(), Block{{static_cast<std::int64_t>(offset)}, {static_cast<std::int64_t>(bytes)}});
  Handle mem_space = make_dataspace({static_cast<std::int64_t>(bytes)}, "memory dataspace");
  check(H5Dwrite(packed.dataset.get(), H5T_NATIVE_UCHAR, mem_space.get(), file_space.get(), dxpl_independent_.get(),
                 data),
        "write packed tensors in " + path_);
}

void ContainerWriter::Impl::write_block(std::size_t index, const Block& block, const void* data) {
  const RawTarget& raw = raw_targets_.at(index);
  if (raw.packed_offset) {
    const auto* bytes = static_cast<const char*>(data);
    for_each_run(raw.shape, block, raw.esz, [&](std::uint64_t at, std::uint64_t from, std::uint64_t n) {
      write_packed(raw.packed_group, *raw.packed_offset + at, bytes + from, n, at == 0 ? raw.padding_before : 0);
    });
    return;
  }
  const hid_t dset = datasets_[index].get();
  if (raw.address) {
    if (const auto range = contiguous_range(raw.shape, block, raw.esz)) {
      coalescing_->write(*raw.address + range->offset, data, range->bytes);
      return;
    }
  }
  if (block.count.empty()) {  // scalar
    check(H5Dwrite(dset, datatypes_[index].get(), H5S_ALL, H5S_ALL, dxpl_independent_.get(), data),
          "write scalar dataset in " + path_);
    return;
  }
  Handle file_space = checked(H5Dget_space(dset), "get dataspace");
  select_block(file_space.get(), block);
  Handle mem_space = make_dataspace({block_elements(block)}, "memory dataspace");
  check(H5Dwrite(dset, datatypes_[index].get(), mem_space.get(), file_space.get(), dxpl_independent_.get(), data),
        "write block " + describe_block(block) + " of dataset #" + std::to_string(index) + " in " + path_);
}

void ContainerWriter::Impl::flush_blocks() {
  if (coalescing_) coalescing_->flush();
}

void ContainerWriter::Impl::create_bytes_dataset(const char* path, std::uint64_t bytes) {
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), "create dataset creation list");
  check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "set fill time");
  check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "set allocation time");
  Handle space = make_dataspace({static_cast<std::int64_t>(bytes)}, std::string("dataspace for ") + path);
  byte_datasets_.emplace_back(
      path, checked(H5Dcreate2(file_.get(), path, H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                    std::string("create dataset ") + path + " in " + path_));
}

void ContainerWriter::Impl::write_bytes(const char* path, std::uint64_t offset, const void* data, std::uint64_t bytes) {
  if (bytes == 0) return;
  const hid_t dset = metadata_dataset(path);
  Handle file_space = checked(H5Dget_space(dset), "get dataspace");
  select_block(file_space.get(), Block{{static_cast<std::int64_t>(offset)}, {static_cast<std::int64_t>(bytes)}});
  Handle mem_space = make_dataspace({static_cast<std::int64_t>(bytes)}, "memory dataspace");
  check(H5Dwrite(dset, H5T_NATIVE_UCHAR, mem_space.get(), file_space.get(), dxpl_independent_.get(), data),
        std::string("write ") + path + " in " + path_);
}

void ContainerWriter::Impl::create_u64_dataset(const char* path, std::uint64_t count) {
  Handle space = make_dataspace({static_cast<std::int64_t>(count)}, std::string("dataspace for ") + path);
  byte_datasets_.emplace_back(
      path, checked(H5Dcreate2(file_.get(), path, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    std::string("create dataset ") + path + " in " + path_));
}

void ContainerWriter::Impl::write_u64(const char* path, const std::vector<std::uint64_t>& values) {
  if (values.empty()) return;
  check(H5Dwrite(metadata_dataset(path), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, dxpl_independent_.get(), values.data()),
        std::string("write ") + path + " in " + path_);
}

hid_t ContainerWriter::Impl::metadata_dataset(const char* path) {
  auto it = std::find_if(byte_datasets_.begin(), byte_datasets_.end(), [&](const auto& p) { return p.first == path; });
  if (it == byte_datasets_.end()) throw Error(std::string("internal: dataset ") + path + " was not created");
  return it->second.get();
}

void ContainerWriter::Impl::write_root_attributes(const RootAttributes& a) {
  const hid_t root = file_.get();
  write_string_attribute(root, kAttrFormat, kFormatName);
  const bool packed = std::any_of(raw_targets_.begin(), raw_targets_.end(),
                                  [](const RawTarget& t) { return t.packed_offset.has_value(); });
  write_int_attribute(root, kAttrFormatVersion, packed ? kFormatVersion : kFormatVersionUnpacked);
  write_string_attribute(root, kAttrLibraryVersion, a.library_version);
  write_string_attribute(root, kAttrCreated, a.created);
  write_string_attribute(root, kAttrHost, a.host);
  write_int_attribute(root, kAttrWorldSize, a.world_size);
  write_int_attribute(root, kAttrEpoch, a.epoch);
  write_int_attribute(root, kAttrStep, a.step);
  write_int_attribute(root, kAttrGlobalStep, a.global_step);
  if (!a.index_xxh3.empty()) write_string_attribute(root, kAttrIndexXxh3, a.index_xxh3);
}

void ContainerWriter::Impl::close() {
  flush_blocks();
  coalescing_.reset();
  datasets_.clear();
  packed_.clear();
  byte_datasets_.clear();
  groups_.clear();
  datatypes_.clear();
  dxpl_independent_.reset();
  std::string error;
  if (!file_.close(&error)) throw IoError("close " + path_ + ": " + error);
}

ContainerWriter::ContainerWriter(MPI_Comm comm, const std::string& path, const FileTuning& tuning)
    : impl_(std::make_unique<Impl>(comm, path, tuning)) {}
ContainerWriter::~ContainerWriter() = default;
void ContainerWriter::create_datasets(const std::vector<DatasetSpec>& specs) { impl_->create_datasets(specs); }
void ContainerWriter::write_block(std::size_t index, const Block& block, const void* data) {
  impl_->write_block(index, block, data);
}
void ContainerWriter::flush_blocks() { impl_->flush_blocks(); }
std::optional<std::uint64_t> ContainerWriter::packed_offset(std::size_t index) const {
  return impl_->packed_offset(index);
}
void ContainerWriter::create_bytes_dataset(const char* path, std::uint64_t bytes) {
  impl_->create_bytes_dataset(path, bytes);
}
void ContainerWriter::write_bytes(const char* path, std::uint64_t offset, const void* data, std::uint64_t bytes) {
  impl_->write_bytes(path, offset, data, bytes);
}
void ContainerWriter::create_u64_dataset(const char* path, std::uint64_t count) {
  impl_->create_u64_dataset(path, count);
}
void ContainerWriter::write_u64(const char* path, const std::vector<std::uint64_t>& values) {
  impl_->write_u64(path, values);
}
void ContainerWriter::write_root_attributes(const RootAttributes& attrs) { impl_->write_root_attributes(attrs); }
void ContainerWriter::close() { impl_->close(); }

}  // namespace ckptio::detail::h5
