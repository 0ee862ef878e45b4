#include "h5/h5_util.hpp"

#include "ckptio/error.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail::h5 {

Handle make_dataspace(const std::vector<std::int64_t>& dims, const std::string& what) {
  if (dims.empty()) return checked(H5Screate(H5S_SCALAR), what);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  return checked(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), what);
}

void select_block(hid_t space, const Block& block) {
  std::vector<hsize_t> start(block.offset.begin(), block.offset.end());
  std::vector<hsize_t> count(block.count.begin(), block.count.end());
  check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        "select block " + describe_block(block));
}

std::int64_t block_elements(const Block& block) { return block_volume(block); }

std::string describe_block(const Block& block) {
  return "offset " + shape_to_string(block.offset) + " count " + shape_to_string(block.count);
}

void write_string_attribute(hid_t object, const char* name, const std::string& value) {
  Handle type = checked(H5Tcopy(H5T_C_S1), "copy string type");
  check(H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1)), "set string size");
  check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), "set string padding");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "set string charset");
  Handle space = checked(H5Screate(H5S_SCALAR), "scalar dataspace");
  Handle attr = checked(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        std::string("create attribute ") + name);
  std::string buffer = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(attr.get(), type.get(), buffer.data()), std::string("write attribute ") + name);
}

void write_int_attribute(hid_t object, const char* name, std::int64_t value) {
  Handle space = checked(H5Screate(H5S_SCALAR), "scalar dataspace");
  Handle attr = checked(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        std::string("create attribute ") + name);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), std::string("write attribute ") + name);
}

std::optional<std::string> read_string_attribute(hid_t object, const char* name) {
  const htri_t exists = H5Aexists(object, name);
  if (exists < 0) check(-1, std::string("look up attribute ") + name);
  if (exists == 0) return std::nullopt;
  Handle attr = checked(H5Aopen(object, name, H5P_DEFAULT), std::string("open attribute ") + name);
  Handle type = checked(H5Aget_type(attr.get()), std::string("type of attribute ") + name);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) != 0)
    throw FormatError(std::string("attribute ") + name + " is not a fixed-length string");
  const std::size_t size = H5Tget_size(type.get());
  if (size == 0 || size > (1u << 20)) throw FormatError(std::string("attribute ") + name + " has an invalid size");
  std::string value(size, '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), std::string("read attribute ") + name);
  value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
  return value;
}

std::optional<std::int64_t> read_int_attribute(hid_t object, const char* name) {
  const htri_t exists = H5Aexists(object, name);
  if (exists < 0) check(-1, std::string("look up attribute ") + name);
  if (exists == 0) return std::nullopt;
  Handle attr = checked(H5Aopen(object, name, H5P_DEFAULT), std::string("open attribute ") + name);
  Handle type = checked(H5Aget_type(attr.get()), std::string("type of attribute ") + name);
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    throw FormatError(std::string("attribute ") + name + " is not an integer");
  Handle space = checked(H5Aget_space(attr.get()), std::string("dataspace of attribute ") + name);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw FormatError(std::string("attribute ") + name + " is not a single value");
  std::int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), std::string("read attribute ") + name);
  return value;
}

}  // namespace ckptio::detail::h5
