// The container index: encode_index writes the text that nlohmann's dump() gives for the same
// document (names with quotes, control characters and non-ASCII UTF-8 included), packed
// places round trip, and malformed packed records are refused with their reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ckptio/error.hpp"
#include "core/piece_checksum.hpp"
#include "h5/index_codec.hpp"
#include "h5/index_tables.hpp"

namespace ckptio::detail::h5 {
namespace {

ContainerIndex sample(bool packed) {
  ContainerIndex index;
  index.world_size = 2;
  index.chunk_bytes = 1 << 20;
  index.running_state = {812, 0x0123456789abcdefull};
  index.rank_blobs = {{3, 1}, {0, 0xffffffffffffffffull}};
  const char* names[] = {"blocks.0.w", "quote\"back\\slash", "tab\tnew\nline\x01",
                         "gr\xc3\xbc\xc3\x9f"
                         "e.\xe2\x82\xac"};
  std::uint64_t offset = 0;
  for (const char* name : names) {
    IndexTensor t{"model", name, DType::BF16, {4, 8}, {}, std::nullopt};
    t.pieces.push_back({Block{{0, 0}, {2, 8}}, 0, 0xabcdef0123456789ull, {}});
    t.pieces.push_back({Block{{2, 0}, {2, 8}}, 1, 42, {1, 2, 3}});
    if (packed) t.packed_offset = offset;
    offset += 128;
    index.tensors.push_back(t);
  }
  index.tensors.push_back({"ema", "scalar", DType::F64, {}, {{Block{{}, {}}, 1, 7, {}}}, std::nullopt});
  return index;
}

TEST(IndexCodec, TextEqualsTheDocumentDump) {
  for (bool packed : {false, true}) {
    const ContainerIndex index = sample(packed);
    EXPECT_EQ(encode_index(index), encode_index_as_document(index)) << "packed " << packed;
  }
}

// A save encodes the index before the checksums exist and fills them in afterwards: the
// filled text is byte for byte the text of the index with its checksums.
TEST(IndexCodec, ChecksumsFilledIntoTheTextGiveTheTextOfTheFinishedIndex) {
  const ContainerIndex finished = sample(true);
  ContainerIndex skeleton = finished;
  for (auto& t : skeleton.tensors)
    for (auto& p : t.pieces) {
      p.xxh3 = 0;
      std::fill(p.chunks.begin(), p.chunks.end(), 0);
    }
  ChecksumPlaces places;
  std::string text = encode_index(skeleton, places);
  ASSERT_EQ(places.first_piece.size(), finished.tensors.size() + 1);
  ASSERT_EQ(places.pieces.size(), 9u);
  // Rank 0's table holds the first pieces, rank 1's the second ones (with chunks).
  std::vector<std::string> tables(2);
  for (std::size_t ti = 0; ti < finished.tensors.size(); ++ti)
    for (std::size_t pi = 0; pi < finished.tensors[ti].pieces.size(); ++pi) {
      const IndexPiece& p = finished.tensors[ti].pieces[pi];
      append_piece_checksums(tables[p.writer], ti, pi, {p.xxh3, p.chunks});
    }
  const std::size_t length = text.size();
  fill_piece_checksums(text, places, tables);
  EXPECT_EQ(text.size(), length);
  EXPECT_EQ(text, encode_index(finished));
}

TEST(IndexCodec, FillingChecksumsRefusesATableThatDoesNotFitTheIndex) {
  ContainerIndex index = sample(false);
  ChecksumPlaces places;
  std::string text = encode_index(index, places);
  const auto fill_error = [&](const std::string& table) -> std::string {
    try {
      fill_piece_checksums(text, places, {table});
    } catch (const FormatError& e) {
      return e.what();
    }
    return "<no error>";
  };
  const auto table = [](std::size_t tensor, std::size_t piece, std::vector<std::uint64_t> chunks) {
    std::string out;
    append_piece_checksums(out, tensor, piece, {9, std::move(chunks)});
    return out;
  };
  EXPECT_EQ(fill_error(table(5, 0, {})), "piece checksum table: entry out of range");
  EXPECT_EQ(fill_error(table(4, 1, {})), "piece checksum table: entry out of range");
  EXPECT_EQ(fill_error(table(0, 1, {1, 2})), "piece checksum table: 2 chunk checksums where the index has 3");
  std::string cut = table(0, 1, {1, 2, 3});
  cut.resize(cut.size() - 1);
  EXPECT_EQ(fill_error(cut), "piece checksum table: cut short");
  EXPECT_EQ(text, encode_index(index)) << "a refused table changes nothing it had not reached";
}

// A node-local container (its node_part) is written and read back, in the document's key order.
TEST(IndexCodec, NodePartRoundTrips) {
  ContainerIndex index = sample(false);
  for (auto& t : index.tensors)
    for (auto& p : t.pieces) p.chunks.clear();
  index.node = 1;
  index.nodes = 3;
  EXPECT_EQ(encode_index(index), encode_index_as_document(index));
  const ContainerIndex back = decode_index(encode_index(index), "f.h5");
  EXPECT_EQ(back.node, 1);
  EXPECT_EQ(back.nodes, 3);
}

TEST(IndexCodec, FormatVersionIsTwoOnlyWithPackedTensors) {
  EXPECT_EQ(index_format_version(sample(false)), 1);
  EXPECT_EQ(index_format_version(sample(true)), 2);
  EXPECT_NE(encode_index(sample(false)).find("\"format_version\":1,"), std::string::npos);
  EXPECT_NE(encode_index(sample(true)).find("\"format_version\":2,"), std::string::npos);
}

TEST(IndexCodec, PackedPlacesRoundTrip) {
  ContainerIndex index = sample(true);
  for (auto& t : index.tensors)
    for (auto& p : t.pieces) p.chunks.clear();  // a piece of 32 bytes has no chunk checksums
  const ContainerIndex back = decode_index(encode_index(index), "f.h5");
  ASSERT_EQ(back.tensors.size(), index.tensors.size());
  for (std::size_t i = 0; i < index.tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].name, index.tensors[i].name);
    EXPECT_EQ(back.tensors[i].packed_offset, index.tensors[i].packed_offset);
  }
}

std::string decode_error(const std::string& packed_value) {
  std::string text = encode_index(sample(true));
  const std::string key = "\"packed\":{\"offset\":0}";
  text.replace(text.find(key), key.size(), "\"packed\":" + packed_value);
  try {
    decode_index(text, "f.h5");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(IndexCodec, MalformedPackedRecordsAreRefused) {
  const std::string expected =
      "f.h5: invalid container index: tensor model/blocks.0.w has a malformed 'packed' record (expected "
      "{\"offset\": bytes})";
  EXPECT_EQ(decode_error("{\"offset\":-1}"), expected);
  EXPECT_EQ(decode_error("{\"offset\":\"0\"}"), expected);
  EXPECT_EQ(decode_error("{}"), expected);
  EXPECT_EQ(decode_error("7"), expected);
  EXPECT_EQ(decode_error("{\"offset\":9223372036854775808}"), expected);
}

// A valid index of plain ASCII names in every form decode_index reads fast: chunk checksums,
// packed places, a node part, a scalar.
ContainerIndex plain_sample() {
  ContainerIndex index;
  index.world_size = 3;
  index.chunk_bytes = 16;
  index.node = 1;
  index.nodes = 2;
  index.running_state = {812, 0x0123456789abcdefull};
  index.rank_blobs = {{3, 1}, {0, 0xffffffffffffffffull}, {10, 2}};
  const std::vector<std::uint64_t> chunks = {5, 6};
  index.tensors.push_back({"model", "blocks.0.w", DType::F32, {4, 4}, {}, std::uint64_t{0}});
  index.tensors.back().pieces.push_back({Block{{0, 0}, {2, 4}}, 0, hash_of_chunks({1, 2}), {1, 2}});
  index.tensors.back().pieces.push_back({Block{{2, 0}, {2, 4}}, 2, hash_of_chunks(chunks), chunks});
  index.tensors.push_back({"optimizer", "blocks.0.w", DType::BF16, {3}, {{Block{{0}, {3}}, 1, 9, {}}}, std::nullopt});
  index.tensors.push_back({"ema", "scalar", DType::F64, {}, {{Block{{}, {}}, 1, 7, {}}}, std::uint64_t{64}});
  index.tensors.push_back({"ema", "empty", DType::U8, {0, 5}, {}, std::nullopt});
  return index;
}

std::optional<std::string> document_error(const std::string& text) {
  try {
    decode_index_as_document(text, "f.h5");
  } catch (const FormatError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

TEST(IndexCodec, CanonicalReaderGivesTheDocumentsIndex) {
  const std::string text = encode_index(plain_sample());
  const auto fast = decode_canonical_index(text);
  ASSERT_TRUE(fast.has_value()) << text;
  EXPECT_EQ(*fast, plain_sample());
  EXPECT_EQ(*fast, decode_index_as_document(text, "f.h5"));
}

// Other spellings of the same document (spaces, another key order, escaped or non-ASCII
// names) are not the fast reader's: decode_index reads them through the document.
TEST(IndexCodec, NonCanonicalTextFallsBackToTheDocument) {
  const std::string text = encode_index(plain_sample());
  const std::string pretty = nlohmann::json::parse(text).dump(1);
  EXPECT_FALSE(decode_canonical_index(pretty).has_value());
  EXPECT_EQ(decode_index(pretty, "f.h5"), plain_sample());
  ContainerIndex escaped = sample(false);
  for (auto& t : escaped.tensors)
    for (auto& p : t.pieces) p.chunks.clear();
  EXPECT_FALSE(decode_canonical_index(encode_index(escaped)).has_value());
  EXPECT_EQ(decode_index(encode_index(escaped), "f.h5").tensors.size(), escaped.tensors.size());
}

// Every change of one byte of a canonical index: whatever the fast reader accepts, the
// document reader accepts as the same index; whatever it refuses, decode_index reports with
// the document reader's words.
TEST(IndexCodec, CanonicalReaderAgreesWithTheDocumentOnDamagedText) {
  const std::string text = encode_index(plain_sample());
  int accepted = 0, refused = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    for (const char* change : {"", "0", "9", "-", " ", "\"", "{", "]", ",", "a", "x"}) {
      std::string damaged = text;
      if (i < text.size())
        damaged.replace(i, 1, change);
      else
        damaged += change;
      if (damaged == text) continue;
      const auto fast = decode_canonical_index(damaged);
      const auto error = document_error(damaged);
      if (fast) {
        ++accepted;
        ASSERT_FALSE(error.has_value()) << damaged << ": " << *error;
        EXPECT_EQ(*fast, decode_index_as_document(damaged, "f.h5")) << damaged;
        continue;
      }
      if (!error) continue;
      ++refused;
      try {
        decode_index(damaged, "f.h5");
        ADD_FAILURE() << "decode_index accepted " << damaged;
      } catch (const FormatError& e) {
        EXPECT_EQ(std::string(e.what()), *error);
      }
    }
  }
  EXPECT_GT(accepted, 10);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace ckptio::detail::h5
