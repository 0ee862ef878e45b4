// Small helpers shared by the container writer and reader: dataspaces, hyperslabs and
// attributes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/shard.hpp"
#include "h5/h5_handle.hpp"

namespace ckptio::detail::h5 {

// A simple dataspace of `dims` (a scalar dataspace when dims is empty).
Handle make_dataspace(const std::vector<std::int64_t>& dims, const std::string& what);
// Selects `block` in `space` (replacing any selection).
void select_block(hid_t space, const Block& block);
std::int64_t block_elements(const Block& block);
std::string describe_block(const Block& block);

void write_string_attribute(hid_t object, const char* name, const std::string& value);
void write_int_attribute(hid_t object, const char* name, std::int64_t value);
// nullopt when the attribute does not exist; FormatError when it has the wrong type.
std::optional<std::string> read_string_attribute(hid_t object, const char* name);
std::optional<std::int64_t> read_int_attribute(hid_t object, const char* name);

}  // namespace ckptio::detail::h5
