#include "formats/safetensors_header.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "core/quoted.hpp"
#include "core/untrusted_json.hpp"

namespace ckptio::detail {
namespace {

using nlohmann::json;

// Position of the first byte that is not part of valid UTF-8, or npos.
std::size_t invalid_utf8_at(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string::npos;
}

std::string shape_text(const json& shape) { return shape.dump(); }

std::string offsets_text(std::uint64_t b, std::uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

// A JSON value as a non-negative integer; describes the problem otherwise.
bool as_u64(const json& v, std::uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
    out = static_cast<std::uint64_t>(v.get<std::int64_t>());
    return true;
  }
  return false;
}

}  // namespace

std::uint64_t read_le64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

const SafetensorsTensor* SafetensorsHeader::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

// Parses the header text as untrusted JSON (see parse_safetensors_header).
json parse_header_json(const std::string& file, const unsigned char* text, std::uint64_t n) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(file + ": " + what); };
  // Parsed without recursion, nesting bounded as serde_json (the reference's parser) bounds
  // it, refusing duplicate keys (nlohmann would keep the last one silently).
  using Problem = UntrustedJsonResult::Problem;
  UntrustedJsonResult parsed_header =
      try_parse_untrusted_json(std::string_view(reinterpret_cast<const char*>(text), static_cast<std::size_t>(n)));
  switch (parsed_header.problem) {
    case Problem::None:
      break;
    case Problem::Syntax:
      fail("safetensors header is not valid JSON: " + parsed_header.syntax_error);
      break;
    case Problem::TooDeep:
      fail("safetensors header nests arrays and objects more than " + std::to_string(kMaxJsonDepth) + " levels deep");
      break;
    case Problem::DuplicateKey:
      if (parsed_header.depth == 1)
        fail("tensor " + quoted_text(parsed_header.key) + " appears more than once in the header");
      fail("duplicate key " + quoted_text(parsed_header.key) + " in the safetensors header");
  }
  if (!parsed_header.value.is_object()) fail("safetensors header is not a JSON object");
  return std::move(parsed_header.value);
}

// One tensor's entry of the header: its three fields, checked.
SafetensorsTensor parse_tensor_entry(const std::string& file, const std::string& key, const json& value) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(file + ": " + what); };
  const std::string where = "tensor " + quoted_text(key) + ": ";
  if (!value.is_object()) fail(where + "entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) fail(where + "missing field '" + field + "'");
  for (const auto& [field, v] : value.items()) {
    (void)v;
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      fail(where + "unknown field " + quoted_text(field));
  }
  SafetensorsTensor t;
  t.name = key;
  const json& dtype = value["dtype"];
  if (!dtype.is_string()) fail(where + "field 'dtype' is not a string");
  const auto parsed = parse_dtype(dtype.get_ref<const std::string&>());
  if (!parsed) fail(where + "unknown dtype " + quoted_text(dtype.get<std::string>()));
  t.dtype = *parsed;
  const json& shape = value["shape"];
  if (!shape.is_array()) fail(where + "field 'shape' is not an array");
  for (const auto& d : shape) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<std::int64_t>() < 0)
      fail(where + "shape " + shape_text(shape) + " has a negative dimension");
    std::uint64_t dim = 0;
    if (!as_u64(d, dim)) fail(where + "shape " + shape_text(shape) + " has a dimension that is not an integer");
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(where + "shape " + shape_text(shape) + " has a dimension that is too large");
    t.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !as_u64(offsets[0], t.begin) || !as_u64(offsets[1], t.end))
    fail(where + "field 'data_offsets' is not an array of two non-negative integers");
  return t;
}

// Offsets: sorted, contiguous from 0, each exactly elements x dtype size, ending where the
// data section ends.
void check_data_offsets(const std::string& file, std::vector<SafetensorsTensor>& tensors, std::uint64_t data_bytes) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(file + ": " + what); };
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : (a.end != b.end ? a.end < b.end : a.name < b.name);
  });
  std::uint64_t expected = 0;
  for (const auto& t : tensors) {
    const std::string where = "tensor " + quoted_text(t.name) + ": ";
    if (t.end < t.begin) fail(where + "data_offsets " + offsets_text(t.begin, t.end) + " end before they begin");
    if (t.begin > expected)
      fail(where + "data_offsets " + offsets_text(t.begin, t.end) + " leave a gap after byte " +
           std::to_string(expected) + " of the data section");
    if (t.begin < expected)
      fail(where + "data_offsets " + offsets_text(t.begin, t.end) +
           " overlap the previous tensor, which ends at byte " + std::to_string(expected));
    std::uint64_t bytes = dtype_size(t.dtype);
    for (const auto dim : t.shape) {
      const auto d = static_cast<std::uint64_t>(dim);
      if (d != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / d)
        fail(where + "the byte size of shape " + json(t.shape).dump() + " of " + std::string(dtype_name(t.dtype)) +
             " overflows 64 bits");
      bytes *= d;
    }
    if (t.end - t.begin != bytes)
      fail(where + "data_offsets " + offsets_text(t.begin, t.end) + " hold " + std::to_string(t.end - t.begin) +
           " bytes but shape " + json(t.shape).dump() + " of " + std::string(dtype_name(t.dtype)) + " needs " +
           std::to_string(bytes));
    expected = t.end;
  }
  if (data_bytes != expected)
    fail("the data section is " + std::to_string(data_bytes) + " bytes but the tensors end at byte " +
         std::to_string(expected) + (data_bytes < expected ? " (file truncated)" : " (trailing bytes)"));
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::string& file, const unsigned char* prefix,
                                           std::size_t prefix_size, std::uint64_t file_size) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(file + ": " + what); };
  if (file_size < 8)
    fail("file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte safetensors header length");
  if (prefix_size < 8) fail("header length could not be read");
  const std::uint64_t n = read_le64(prefix);
  if (n > kSafetensorsMaxHeaderBytes)
    fail("safetensors header length " + std::to_string(n) + " exceeds the limit of " +
         std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (8 + n > file_size)
    fail("safetensors header of " + std::to_string(n) + " bytes extends beyond the end of the file (" +
         std::to_string(file_size) + " bytes)");
  if (8 + n > prefix_size) fail("safetensors header could not be read");
  const unsigned char* text = prefix + 8;
  if (auto bad = invalid_utf8_at(text, n); bad != std::string::npos)
    fail("safetensors header is not valid UTF-8 (byte " + std::to_string(bad) + " of the header)");

  const json doc = parse_header_json(file, text, n);
  SafetensorsHeader header;
  header.header_bytes = n;
  for (const auto& [key, value] : doc.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;  // the reference reads null as "no metadata"
      if (!value.is_object()) fail("__metadata__ is not a map of strings to strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail("__metadata__ entry " + quoted_text(mk) + " is not a string");
        header.metadata[mk] = mv.get<std::string>();
      }
      header.has_metadata = true;
      continue;
    }
    header.tensors.push_back(parse_tensor_entry(file, key, value));
  }
  check_data_offsets(file, header.tensors, file_size - 8 - n);
  return header;
}

int reference_dtype_rank(DType dtype) noexcept {
  switch (dtype) {
    case DType::BOOL:
      return 0;
    case DType::U8:
      return 1;
    case DType::I8:
      return 2;
    case DType::F8_E5M2:
      return 3;
    case DType::F8_E4M3:
      return 4;
    case DType::I16:
      return 5;
    case DType::U16:
      return 6;
    case DType::F16:
      return 7;
    case DType::BF16:
      return 8;
    case DType::I32:
      return 9;
    case DType::U32:
      return 10;
    case DType::F32:
      return 11;
    case DType::F64:
      return 12;
    case DType::I64:
      return 13;
    case DType::U64:
      return 14;
  }
  return 0;
}

void sort_reference_order(std::vector<SafetensorsEntry>& entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    const int ra = reference_dtype_rank(a.dtype), rb = reference_dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
}

SerializedHeader serialize_safetensors_header(std::vector<SafetensorsEntry> entries,
                                              const std::map<std::string, std::string>& metadata) {
  sort_reference_order(entries);
  auto quote = [](const std::string& s, const char* what) {
    try {
      return json(s).dump();
    } catch (const json::exception&) {
      throw UsageError(std::string(what) + " is not valid UTF-8");
    }
  };
  SerializedHeader out;
  std::string text = "{";
  if (!metadata.empty()) {
    text += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      text += (first ? "" : ",") + quote(k, "a metadata key") + ":" + quote(v, "a metadata value");
      first = false;
    }
    text += "}";
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (i > 0 && entries[i - 1].name == e.name) throw UsageError("tensor '" + e.name + "' is given twice");
    if (e.name == "__metadata__") throw UsageError("a tensor cannot be named __metadata__");
    std::uint64_t bytes = dtype_size(e.dtype);
    for (const auto d : e.shape) {
      if (d < 0) throw UsageError("tensor '" + e.name + "' has a negative dimension");
      bytes *= static_cast<std::uint64_t>(d);
    }
    if (text.size() > 1) text += ",";
    text += quote(e.name, ("tensor name '" + e.name + "'").c_str());
    text += ":{\"dtype\":\"" + std::string(dtype_name(e.dtype)) + "\",\"shape\":" + json(e.shape).dump() +
            ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    out.tensors.push_back({e.name, e.dtype, e.shape, offset, offset + bytes});
    offset += bytes;
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');
  out.data_bytes = offset;
  out.bytes.resize(8);
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.bytes += text;
  return out;
}

}  // namespace ckptio::detail
