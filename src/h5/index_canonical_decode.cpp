// A fast reader for the container index in the exact form encode_index writes (and
// nlohmann::json::dump() wrote before it): keys in sorted order, no spaces, plain ASCII
// strings. It builds the ContainerIndex straight from the text, without a JSON document:
// the document cost about 30 us per tensor of 4 pieces to build and free (3 s at 100,000
// tensors, on every loading rank). Anything else, and every index that breaks a rule,
// makes it give up, so that the reference decoder reads the text and words the error.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include "ckptio/error.hpp"
#include "ckptio/state_dict.hpp"
#include "core/checksum.hpp"
#include "core/piece_checksum.hpp"
#include "core/piece_math.hpp"
#include "h5/index_codec.hpp"

namespace ckptio::detail::h5 {
namespace {

constexpr std::uint64_t kMaxInt64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

class CanonicalText {
 public:
  explicit CanonicalText(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool literal(std::string_view s) {
    if (static_cast<std::size_t>(end_ - p_) < s.size() || std::memcmp(p_, s.data(), s.size()) != 0) return false;
    p_ += s.size();
    return true;
  }
  bool next_is(char c) const { return p_ < end_ && *p_ == c; }
  bool at_end() const { return p_ == end_; }

  // A non-negative integer as JSON writes it (no sign, no leading zero), at most INT64_MAX.
  bool number(std::uint64_t& out) {
    const char* start = p_;
    std::uint64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      const auto digit = static_cast<std::uint64_t>(*p_ - '0');
      if (v > (kMaxInt64 - digit) / 10) return false;
      v = v * 10 + digit;
      ++p_;
    }
    if (p_ == start || (*start == '0' && p_ - start > 1)) return false;
    out = v;
    return true;
  }
  // A string of printable ASCII without quote or backslash: read as it stands.
  bool plain_string(std::string_view& out) {
    if (!literal("\"")) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      const auto u = static_cast<unsigned char>(*p_);
      if (u < 0x20 || u >= 0x7f || u == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    out = std::string_view(start, static_cast<std::size_t>(p_ - start));
    ++p_;
    return true;
  }
  bool hex(std::uint64_t& out) {
    std::string_view s;
    if (!plain_string(s)) return false;
    const auto v = from_hex64(s);
    if (!v) return false;
    out = *v;
    return true;
  }
  bool int_list(std::vector<std::int64_t>& out) {
    if (!literal("[")) return false;
    if (literal("]")) return true;
    do {
      std::uint64_t v = 0;
      if (!number(v)) return false;
      out.push_back(static_cast<std::int64_t>(v));
    } while (literal(","));
    return literal("]");
  }
  bool blob(BlobRecord& out) {
    return literal("{\"bytes\":") && number(out.bytes) && literal(",\"xxh3\":") && hex(out.xxh3) && literal("}");
  }

 private:
  const char* p_;
  const char* end_;
};

bool known_group(std::string_view g) { return g == "model" || g == "optimizer" || g == "ema"; }

bool valid_name(std::string_view name) {
  try {
    StateDict::validate_name(name);
  } catch (const Error&) {
    return false;
  }
  return true;
}

// The shape's element count and byte count fit in 63 bits.
bool shape_fits(const Shape& shape, DType dtype) {
  if (shape.size() > 32) return false;
  std::uint64_t elements = 0;
  try {
    elements = static_cast<std::uint64_t>(element_count(shape));
  } catch (const Error&) {
    return false;
  }
  return elements <= kMaxInt64 / dtype_size(dtype);
}

bool block_inside(const Block& b, const Shape& shape) {
  if (b.offset.size() != shape.size() || b.count.size() != shape.size()) return false;
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (b.offset[d] > shape[d] || b.count[d] > shape[d] - b.offset[d]) return false;
  return true;
}

// Reads a piece; checked against its tensor once the tensor's shape is known (check_piece).
bool piece(CanonicalText& in, IndexPiece& p, std::uint64_t& max_writer) {
  if (!in.literal("{")) return false;
  if (in.literal("\"chunks\":[")) {
    do {
      std::uint64_t c = 0;
      if (!in.hex(c)) return false;
      p.chunks.push_back(c);
    } while (in.literal(","));
    if (!in.literal("],")) return false;
  }
  std::uint64_t writer = 0;
  if (!in.literal("\"count\":") || !in.int_list(p.block.count) || !in.literal(",\"offset\":") ||
      !in.int_list(p.block.offset) || !in.literal(",\"writer\":") || !in.number(writer) || !in.literal(",\"xxh3\":") ||
      !in.hex(p.xxh3) || !in.literal("}"))
    return false;
  max_writer = std::max(max_writer, writer);
  p.writer = static_cast<int>(std::min<std::uint64_t>(writer, std::numeric_limits<int>::max()));
  return true;
}

bool check_piece(const IndexPiece& p, const IndexTensor& t, std::uint64_t chunk_bytes) {
  if (!block_inside(p.block, t.shape)) return false;
  const std::uint64_t piece_bytes = static_cast<std::uint64_t>(block_volume(p.block)) * dtype_size(t.dtype);
  if (!p.chunks.empty())
    return chunk_bytes && p.chunks.size() == chunk_count(piece_bytes, chunk_bytes) && p.chunks.size() >= 2 &&
           hash_of_chunks(p.chunks) == p.xxh3;
  return !chunk_bytes || piece_bytes <= chunk_bytes;
}

bool tensor(CanonicalText& in, std::uint64_t chunk_bytes, IndexTensor& t, std::uint64_t& max_writer) {
  std::string_view dtype, group, name;
  if (!in.literal("{\"dtype\":") || !in.plain_string(dtype) || !in.literal(",\"group\":") || !in.plain_string(group) ||
      !in.literal(",\"name\":") || !in.plain_string(name))
    return false;
  const auto dt = parse_dtype(dtype);
  if (!dt || !known_group(group) || !valid_name(name)) return false;
  t.dtype = *dt;
  t.group = group;
  t.name = name;
  if (in.literal(",\"packed\":{\"offset\":")) {
    std::uint64_t offset = 0;
    if (!in.number(offset) || !in.literal("}")) return false;
    t.packed_offset = offset;
  }
  if (!in.literal(",\"pieces\":[")) return false;
  if (!in.literal("]")) {
    do {
      if (!piece(in, t.pieces.emplace_back(), max_writer)) return false;
    } while (in.literal(","));
    if (!in.literal("]")) return false;
  }
  if (!in.literal(",\"shape\":") || !in.int_list(t.shape) || !in.literal("}")) return false;
  if (!shape_fits(t.shape, t.dtype)) return false;
  for (const auto& p : t.pieces)
    if (!check_piece(p, t, chunk_bytes)) return false;
  return true;
}

// Whether two tensors share a group and a name. An open-addressing table of positions
// (no allocation per tensor): at 100,000 tensors a node-based set cost as much as the rest
// of the decoding.
bool has_duplicate(const std::vector<IndexTensor>& tensors) {
  std::size_t capacity = 16;
  while (capacity < 2 * tensors.size()) capacity *= 2;
  std::vector<std::uint32_t> slots(capacity, 0);  // position + 1; 0: empty
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const IndexTensor& t = tensors[i];
    std::size_t slot = (xxh3_64(t.name.data(), t.name.size()) ^ std::hash<std::string>()(t.group)) & (capacity - 1);
    for (; slots[slot] != 0; slot = (slot + 1) & (capacity - 1)) {
      const IndexTensor& other = tensors[slots[slot] - 1];
      if (other.name == t.name && other.group == t.group) return true;
    }
    slots[slot] = static_cast<std::uint32_t>(i + 1);
  }
  return false;
}

}  // namespace

std::optional<ContainerIndex> decode_canonical_index(std::string_view text) {
  CanonicalText in(text);
  ContainerIndex index;
  std::uint64_t number = 0;
  if (!in.literal("{")) return std::nullopt;
  if (in.literal("\"checksum_chunk_bytes\":")) {
    if (!in.number(number) || number == 0 || number % 8 != 0 || number > (1ull << 40) || !in.literal(","))
      return std::nullopt;
    index.chunk_bytes = number;
  }
  std::string_view format;
  if (!in.literal("\"format\":") || !in.plain_string(format) || !in.literal(",\"format_version\":") ||
      !in.number(number))
    return std::nullopt;
  if (in.literal(",\"node_part\":{\"node\":")) {
    std::uint64_t node = 0, nodes = 0;
    if (!in.number(node) || !in.literal(",\"nodes\":") || !in.number(nodes) || !in.literal("}") || nodes < 1 ||
        nodes > (1u << 24) || node >= nodes)
      return std::nullopt;
    index.node = static_cast<int>(node);
    index.nodes = static_cast<int>(nodes);
  }
  if (!in.literal(",\"rank_blobs\":[")) return std::nullopt;
  if (!in.literal("]")) {
    do {
      if (!in.blob(index.rank_blobs.emplace_back())) return std::nullopt;
    } while (in.literal(","));
    if (!in.literal("]")) return std::nullopt;
  }
  if (!in.literal(",\"running_state\":") || !in.blob(index.running_state) || !in.literal(",\"tensors\":["))
    return std::nullopt;
  std::uint64_t max_writer = 0;
  if (!in.literal("]")) {
    do {
      if (!tensor(in, index.chunk_bytes, index.tensors.emplace_back(), max_writer)) return std::nullopt;
    } while (in.literal(","));
    if (!in.literal("]")) return std::nullopt;
  }
  if (!in.literal(",\"world_size\":") || !in.number(number) || !in.literal("}") || !in.at_end() || number < 1 ||
      number > (1u << 24))
    return std::nullopt;
  index.world_size = static_cast<int>(number);
  if (index.rank_blobs.size() != number) return std::nullopt;
  if (max_writer >= number) return std::nullopt;
  if (index.tensors.size() >= std::numeric_limits<std::uint32_t>::max() || has_duplicate(index.tensors))
    return std::nullopt;
  return index;
}

}  // namespace ckptio::detail::h5
