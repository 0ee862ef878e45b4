#include "h5/index_codec.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "ckptio/error.hpp"
#include "ckptio/snapshot.hpp"
#include "ckptio/state_dict.hpp"
#include "core/checksum.hpp"
#include "core/piece_checksum.hpp"
#include "core/piece_math.hpp"
#include "core/quoted.hpp"
#include "core/untrusted_json.hpp"
#include "h5/container_format.hpp"

namespace ckptio::detail::h5 {
namespace {

using nlohmann::json;

json blob_json(const BlobRecord& b) { return {{"bytes", b.bytes}, {"xxh3", to_hex64(b.xxh3)}}; }

[[noreturn]] void bad(const std::string& file, const std::string& what) {
  throw FormatError(file + ": invalid container index: " + what);
}

std::uint64_t hex_field(const json& j, const char* key, const std::string& file, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) bad(file, where + " has no '" + key + "' checksum");
  auto v = from_hex64(j[key].get<std::string>());
  if (!v) bad(file, where + " has a malformed checksum");
  return *v;
}

std::vector<std::int64_t> int_list(const json& j, const char* key, const std::string& file, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array()) bad(file, where + " has no '" + key + "' list");
  std::vector<std::int64_t> out;
  for (const auto& v : j[key]) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0) bad(file, where + " has a bad '" + key + "' entry");
    out.push_back(v.get<std::int64_t>());
  }
  return out;
}

BlobRecord blob_record(const json& j, const std::string& file, const std::string& where) {
  if (!j.is_object() || !j.contains("bytes") || !j["bytes"].is_number_unsigned()) bad(file, where + " is malformed");
  return BlobRecord{j["bytes"].get<std::uint64_t>(), hex_field(j, "xxh3", file, where)};
}

}  // namespace

int index_format_version(const ContainerIndex& index) {
  for (const auto& t : index.tensors)
    if (t.packed_offset) return kFormatVersion;
  return kFormatVersionUnpacked;
}

namespace {

// The index is written as text directly: building it as a JSON document first cost about
// 28 us per tensor of 4 pieces (2.8 s at 100,000 tensors, on every saving rank). The bytes
// are those nlohmann::json::dump() gives for the same document: keys in sorted order, no
// spaces, strings escaped by nlohmann itself unless they are plain printable ASCII.
// Numbers and checksums go through fixed buffers (no temporary strings).
void append_string(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += json(std::string(text)).dump();
      return;
    }
  }
  out += '"';
  out += text;
  out += '"';
}

template <class Int>
void append_number(std::string& out, Int value) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
  out.append(buf, static_cast<std::size_t>(end - buf));
}

template <class Int>
void append_list(std::string& out, const std::vector<Int>& values) {
  out += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    append_number(out, values[i]);
  }
  out += ']';
}

// Where its 16 hex digits start.
std::size_t append_hex(std::string& out, std::uint64_t value) {
  char buf[18];
  buf[0] = buf[17] = '"';
  write_hex64(value, buf + 1);
  out.append(buf, sizeof buf);
  return out.size() - 17;
}

void append_blob(std::string& out, const BlobRecord& b) {
  out += "{\"bytes\":";
  append_number(out, b.bytes);
  out += ",\"xxh3\":";
  append_hex(out, b.xxh3);
  out += '}';
}

void encode_into(const ContainerIndex& index, std::string& out, ChecksumPlaces* places) {
  out.reserve(256 + index.tensors.size() * 200);
  out += '{';
  if (index.chunk_bytes) {
    out += "\"checksum_chunk_bytes\":";
    append_number(out, index.chunk_bytes);
    out += ',';
  }
  out += "\"format\":";
  append_string(out, kFormatName);
  out += ",\"format_version\":";
  append_number(out, index_format_version(index));
  if (index.nodes > 0) {
    out += ",\"node_part\":{\"node\":";
    append_number(out, index.node);
    out += ",\"nodes\":";
    append_number(out, index.nodes);
    out += '}';
  }
  out += ",\"rank_blobs\":[";
  for (std::size_t i = 0; i < index.rank_blobs.size(); ++i) {
    if (i) out += ',';
    append_blob(out, index.rank_blobs[i]);
  }
  out += "],\"running_state\":";
  append_blob(out, index.running_state);
  out += ",\"tensors\":[";
  if (places) places->first_piece.reserve(index.tensors.size() + 1);
  for (std::size_t ti = 0; ti < index.tensors.size(); ++ti) {
    const auto& t = index.tensors[ti];
    if (places) places->first_piece.push_back(places->pieces.size());
    if (ti) out += ',';
    out += "{\"dtype\":";
    append_string(out, dtype_name(t.dtype));
    out += ",\"group\":";
    append_string(out, t.group);
    out += ",\"name\":";
    append_string(out, t.name);
    if (t.packed_offset) {
      out += ",\"packed\":{\"offset\":";
      append_number(out, *t.packed_offset);
      out += '}';
    }
    out += ",\"pieces\":[";
    for (std::size_t pi = 0; pi < t.pieces.size(); ++pi) {
      const auto& p = t.pieces[pi];
      if (pi) out += ',';
      out += '{';
      std::size_t first_chunk_at = 0;
      if (!p.chunks.empty()) {
        out += "\"chunks\":[";
        for (std::size_t c = 0; c < p.chunks.size(); ++c) {
          if (c) out += ',';
          const std::size_t at = append_hex(out, p.chunks[c]);
          if (c == 0) first_chunk_at = at;
        }
        out += "],";
      }
      out += "\"count\":";
      append_list(out, p.block.count);
      out += ",\"offset\":";
      append_list(out, p.block.offset);
      out += ",\"writer\":";
      append_number(out, p.writer);
      out += ",\"xxh3\":";
      const std::size_t xxh3_at = append_hex(out, p.xxh3);
      out += '}';
      if (places) places->pieces.push_back({xxh3_at, first_chunk_at, p.chunks.size()});
    }
    out += "],\"shape\":";
    append_list(out, t.shape);
    out += '}';
  }
  if (places) places->first_piece.push_back(places->pieces.size());
  out += "],\"world_size\":";
  append_number(out, index.world_size);
  out += '}';
}

}  // namespace

std::string encode_index(const ContainerIndex& index) {
  std::string out;
  encode_into(index, out, nullptr);
  return out;
}

std::string encode_index(const ContainerIndex& index, ChecksumPlaces& places) {
  places = {};
  std::string out;
  encode_into(index, out, &places);
  return out;
}

// The document encode_index writes as text, built with nlohmann::json (the reference for
// its bytes; see tests/unit/index_codec_test.cpp).
std::string encode_index_as_document(const ContainerIndex& index) {
  json tensors = json::array();
  for (const auto& t : index.tensors) {
    json pieces = json::array();
    for (const auto& p : t.pieces) {
      json piece = {
          {"offset", p.block.offset}, {"count", p.block.count}, {"writer", p.writer}, {"xxh3", to_hex64(p.xxh3)}};
      if (!p.chunks.empty()) {
        json chunks = json::array();
        for (auto c : p.chunks) chunks.push_back(to_hex64(c));
        piece["chunks"] = std::move(chunks);
      }
      pieces.push_back(std::move(piece));
    }
    json entry = {{"group", t.group},
                  {"name", t.name},
                  {"dtype", std::string(dtype_name(t.dtype))},
                  {"shape", t.shape},
                  {"pieces", std::move(pieces)}};
    if (t.packed_offset) entry["packed"] = {{"offset", *t.packed_offset}};
    tensors.push_back(std::move(entry));
  }
  json blobs = json::array();
  for (const auto& b : index.rank_blobs) blobs.push_back(blob_json(b));
  json j = {{"format", kFormatName},
            {"format_version", index_format_version(index)},
            {"world_size", index.world_size},
            {"tensors", std::move(tensors)},
            {"running_state", blob_json(index.running_state)},
            {"rank_blobs", std::move(blobs)}};
  if (index.chunk_bytes) j["checksum_chunk_bytes"] = index.chunk_bytes;
  if (index.nodes > 0) j["node_part"] = {{"node", index.node}, {"nodes", index.nodes}};
  return j.dump();
}

ContainerIndex decode_index(const std::string& json_text, const std::string& file) {
  if (auto index = decode_canonical_index(json_text)) return std::move(*index);
  return decode_index_as_document(json_text, file);
}

ContainerIndex decode_index_as_document(const std::string& json_text, const std::string& file) {
  const json j = parse_untrusted_json(json_text, file + ": invalid container index");
  if (!j.is_object()) bad(file, "not a JSON object");
  ContainerIndex index;
  if (!j.contains("world_size") || !j["world_size"].is_number_integer() || j["world_size"].get<std::int64_t>() < 1 ||
      j["world_size"].get<std::int64_t>() > (1 << 24))
    bad(file, "world_size missing or out of range");
  index.world_size = j["world_size"].get<int>();
  if (j.contains("node_part")) {
    const auto& part = j["node_part"];
    if (!part.is_object() || !part.contains("node") || !part.contains("nodes") || !part["node"].is_number_integer() ||
        !part["nodes"].is_number_integer() || part["nodes"].get<std::int64_t>() < 1 ||
        part["nodes"].get<std::int64_t>() > (1 << 24) || part["node"].get<std::int64_t>() < 0 ||
        part["node"].get<std::int64_t>() >= part["nodes"].get<std::int64_t>())
      bad(file, "node_part must name a node in [0, nodes)");
    index.node = part["node"].get<int>();
    index.nodes = part["nodes"].get<int>();
  }
  if (j.contains("checksum_chunk_bytes")) {
    const auto& c = j["checksum_chunk_bytes"];
    if (!c.is_number_unsigned() || c.get<std::uint64_t>() == 0 || c.get<std::uint64_t>() % 8 != 0 ||
        c.get<std::uint64_t>() > (1ull << 40))
      bad(file, "checksum_chunk_bytes must be a positive multiple of 8");
    index.chunk_bytes = c.get<std::uint64_t>();
  }
  if (!j.contains("tensors") || !j["tensors"].is_array()) bad(file, "no tensor list");
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& t : j["tensors"]) {
    if (!t.is_object() || !t.contains("group") || !t["group"].is_string() || !t.contains("name") ||
        !t["name"].is_string() || !t.contains("dtype") || !t["dtype"].is_string())
      bad(file, "a tensor entry lacks group, name or dtype");
    IndexTensor it;
    it.group = t["group"].get<std::string>();
    it.name = t["name"].get<std::string>();
    const std::string where = "tensor " + printable_text(it.group + "/" + it.name);
    if (it.group != "model" && it.group != "optimizer" && it.group != "ema") bad(file, where + " has an unknown group");
    try {
      StateDict::validate_name(it.name);
    } catch (const Error&) {
      bad(file, where + " has an invalid name");
    }
    if (!seen.insert({it.group, it.name}).second) bad(file, where + " is listed twice");
    const auto dt = parse_dtype(t["dtype"].get<std::string>());
    if (!dt) bad(file, where + " has unknown dtype " + quoted_text(t["dtype"].get<std::string>(), 40));
    it.dtype = *dt;
    it.shape = int_list(t, "shape", file, where);
    if (it.shape.size() > 32) bad(file, where + " has too many dimensions");
    try {
      const auto elements = static_cast<std::uint64_t>(element_count(it.shape));
      // Its byte count must fit too (every size computed from it is 64-bit).
      if (elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / dtype_size(it.dtype))
        bad(file, where + " has shape " + shape_to_string(it.shape) + ", whose byte count overflows 64 bits");
    } catch (const UsageError&) {
      bad(file, where + " has shape " + shape_to_string(it.shape) + ", whose element count overflows 64 bits");
    }
    if (t.contains("packed")) {
      const auto& packed = t["packed"];
      if (!packed.is_object() || !packed.contains("offset") || !packed["offset"].is_number_unsigned() ||
          packed["offset"].get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        bad(file, where + " has a malformed 'packed' record (expected {\"offset\": bytes})");
      it.packed_offset = packed["offset"].get<std::uint64_t>();
    }
    if (!t.contains("pieces") || !t["pieces"].is_array()) bad(file, where + " has no piece list");
    for (const auto& p : t["pieces"]) {
      if (!p.is_object() || !p.contains("writer") || !p["writer"].is_number_integer())
        bad(file, where + " has a bad piece");
      IndexPiece ip;
      ip.block.offset = int_list(p, "offset", file, where);
      ip.block.count = int_list(p, "count", file, where);
      const auto writer = p["writer"].get<std::int64_t>();
      ip.writer = writer < 0 || writer >= index.world_size ? -1 : static_cast<int>(writer);
      ip.xxh3 = hex_field(p, "xxh3", file, where);
      TensorShard probe{reinterpret_cast<void*>(1), it.dtype, it.shape, ip.block, kHostMemory};
      if (!piece_problem(probe).empty() || ip.writer < 0 || ip.writer >= index.world_size)
        bad(file, where + " has a piece outside the tensor or from an unknown rank");
      if (p.contains("chunks")) {
        const auto& chunks = p["chunks"];
        const std::uint64_t piece_bytes = static_cast<std::uint64_t>(block_volume(ip.block)) * dtype_size(it.dtype);
        if (!index.chunk_bytes || !chunks.is_array() || chunks.size() != chunk_count(piece_bytes, index.chunk_bytes) ||
            chunks.size() < 2)
          bad(file, where + " has a chunk checksum list that does not match the piece's size");
        ip.chunks.reserve(chunks.size());
        for (const auto& c : chunks) {
          auto v = c.is_string() ? from_hex64(c.get<std::string>()) : std::nullopt;
          if (!v) bad(file, where + " has a malformed chunk checksum");
          ip.chunks.push_back(*v);
        }
        if (hash_of_chunks(ip.chunks) != ip.xxh3)
          bad(file, where + " has chunk checksums that do not match its piece checksum");
      } else if (index.chunk_bytes &&
                 static_cast<std::uint64_t>(block_volume(ip.block)) * dtype_size(it.dtype) > index.chunk_bytes) {
        bad(file, where + " has a piece larger than one checksum chunk without chunk checksums");
      }
      it.pieces.push_back(std::move(ip));
    }
    index.tensors.push_back(std::move(it));
  }
  if (!j.contains("running_state")) bad(file, "no running_state record");
  index.running_state = blob_record(j["running_state"], file, "running_state");
  if (!j.contains("rank_blobs") || !j["rank_blobs"].is_array() ||
      j["rank_blobs"].size() != static_cast<std::size_t>(index.world_size))
    bad(file, "rank_blobs must list one record per saving rank");
  for (const auto& b : j["rank_blobs"]) index.rank_blobs.push_back(blob_record(b, file, "a rank blob record"));
  return index;
}

std::uint64_t declared_data_bytes(const ContainerIndex& index) {
  std::uint64_t total = 0;
  auto add = [&](std::uint64_t bytes) { total = bytes > UINT64_MAX - total ? UINT64_MAX : total + bytes; };
  for (const auto& t : index.tensors)
    add(static_cast<std::uint64_t>(element_count(t.shape)) * dtype_size(t.dtype));  // checked by decode_index
  add(index.running_state.bytes);
  for (const auto& b : index.rank_blobs) add(b.bytes);
  return total;
}

}  // namespace ckptio::detail::h5
