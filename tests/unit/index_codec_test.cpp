// The container index: encode_index writes the text that nlohmann's dump() gives for the same
// document (names with quotes, control characters and non-ASCII UTF-8 included), packed
// places round trip, and malformed packed records are refused with their reason.
#include <gtest/gtest.h>

#include <string>

#include "ckptio/error.hpp"
#include "h5/index_codec.hpp"

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

}  // namespace
}  // namespace ckptio::detail::h5
