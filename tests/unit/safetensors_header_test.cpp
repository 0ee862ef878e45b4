// Every validation rule of the safetensors header parser, each with a handcrafted header
// and its exact message; and the writer's byte layout.
#include <gtest/gtest.h>

#include <string>

#include "ckptio/error.hpp"
#include "formats/safetensors_header.hpp"

namespace ckptio::detail {
namespace {

std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

std::string file_of(const std::string& json, std::size_t data_bytes) {
  return le64(json.size()) + json + std::string(data_bytes, '\x01');
}

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors_header("f.safetensors", reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                                  bytes.size());
}

std::string error_of(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kOne = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsHeader, ParsesAValidHeader) {
  const auto h = parse(file_of(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"s":{"dtype":"BOOL","shape":[0],"data_offsets":[11,11]}})",
      11));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].shape, (Shape{3}));
  EXPECT_EQ(h.tensors[2].bytes(), 0u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(SafetensorsHeader, FileShorterThanEightBytes) {
  EXPECT_EQ(error_of("abc"), "f.safetensors: file is 3 bytes, shorter than the 8-byte safetensors header length");
}

TEST(SafetensorsHeader, HeaderLengthOverLimit) {
  EXPECT_EQ(error_of(le64(100'000'001) + "{}"),
            "f.safetensors: safetensors header length 100000001 exceeds the limit of 100000000 bytes");
}

TEST(SafetensorsHeader, HeaderBeyondEndOfFile) {
  EXPECT_EQ(error_of(le64(100) + "{}"),
            "f.safetensors: safetensors header of 100 bytes extends beyond the end of the file (10 bytes)");
}

TEST(SafetensorsHeader, InvalidUtf8) {
  EXPECT_EQ(error_of(file_of("{\"\xff\":1}", 0)),
            "f.safetensors: safetensors header is not valid UTF-8 (byte 2 of the header)");
  EXPECT_EQ(error_of(file_of("{\"\xc0\x80\":1}", 0)),  // overlong encoding of NUL
            "f.safetensors: safetensors header is not valid UTF-8 (byte 2 of the header)");
}

TEST(SafetensorsHeader, InvalidJson) {
  EXPECT_EQ(error_of(file_of("{\"a\":", 0)),
            "f.safetensors: safetensors header is not valid JSON: [json.exception.parse_error.101] parse error at line "
            "1, column 6: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal");
  EXPECT_EQ(error_of(file_of("[1,2]", 0)), "f.safetensors: safetensors header is not a JSON object");
}

TEST(SafetensorsHeader, MetadataNotAStringMap) {
  EXPECT_EQ(error_of(file_of(R"({"__metadata__":[1]})", 0)),
            "f.safetensors: __metadata__ is not a map of strings to strings");
  EXPECT_EQ(error_of(file_of(R"({"__metadata__":{"step":3}})", 0)),
            "f.safetensors: __metadata__ entry 'step' is not a string");
  const auto null_metadata = parse(file_of(R"({"__metadata__":null})", 0));  // as the reference: none
  EXPECT_FALSE(null_metadata.has_metadata);
  EXPECT_TRUE(null_metadata.tensors.empty());
}

TEST(SafetensorsHeader, EntryFields) {
  EXPECT_EQ(error_of(file_of(R"({"w":5})", 0)), "f.safetensors: tensor 'w': entry is not a JSON object");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': missing field 'shape'");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8)),
            "f.safetensors: tensor 'w': unknown field 'x'");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': field 'dtype' is not a string");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': field 'shape' is not an array");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)),
            "f.safetensors: tensor 'w': field 'data_offsets' is not an array of two non-negative integers");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", 8)),
            "f.safetensors: tensor 'w': field 'data_offsets' is not an array of two non-negative integers");
}

TEST(SafetensorsHeader, UnknownDtype) {
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1)),
            "f.safetensors: tensor 'w': unknown dtype 'F4'");
}

TEST(SafetensorsHeader, NegativeOrNonIntegerShape) {
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': shape [2,-1] has a negative dimension");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': shape [2.5] has a dimension that is not an integer");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': shape [\"2\"] has a dimension that is not an integer");
}

TEST(SafetensorsHeader, OffsetsNotContiguous) {
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
            "f.safetensors: tensor 'w': data_offsets [4, 12] leave a gap after byte 0 of the data section");
  EXPECT_EQ(
      error_of(file_of(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12)),
      "f.safetensors: tensor 'b': data_offsets [4, 12] overlap the previous tensor, which ends at byte 8");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8)),
            "f.safetensors: tensor 'w': data_offsets [8, 0] end before they begin");
}

TEST(SafetensorsHeader, SizeNotElementsTimesDtype) {
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: tensor 'w': the byte size of shape [4294967296,4294967296] of F64 overflows 64 bits");
}

TEST(SafetensorsHeader, BufferShorterOrLongerThanLastOffset) {
  EXPECT_EQ(error_of(file_of(kOne, 6)),
            "f.safetensors: the data section is 6 bytes but the tensors end at byte 8 (file truncated)");
  EXPECT_EQ(error_of(file_of(kOne, 9)),
            "f.safetensors: the data section is 9 bytes but the tensors end at byte 8 (trailing bytes)");
}

TEST(SafetensorsHeader, DuplicateKeys) {
  EXPECT_EQ(
      error_of(file_of(
          R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
          8)),
      "f.safetensors: tensor 'w' appears more than once in the header");
  EXPECT_EQ(error_of(file_of(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)),
            "f.safetensors: duplicate key 'dtype' in the safetensors header");
}

TEST(SafetensorsHeader, NeverReadsTheDataSection) {
  // Only 8 + N bytes are handed over; the parser must not need more.
  const std::string bytes = file_of(kOne, 8);
  const auto h = parse_safetensors_header("f.safetensors", reinterpret_cast<const unsigned char*>(bytes.data()),
                                          8 + kOne.size(), bytes.size());
  EXPECT_EQ(h.tensors.size(), 1u);
}

TEST(SafetensorsWriter, MatchesTheReferenceSerializer) {
  // The reference implementation's own serialization test: one F32 tensor of shape [1,2,3].
  const auto out = serialize_safetensors_header({{"attn.0", DType::F32, {1, 2, 3}}}, {});
  const std::string json = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  EXPECT_EQ(out.bytes, le64(64) + json + std::string(64 - json.size(), ' '));
  EXPECT_EQ(out.data_bytes, 24u);
}

TEST(SafetensorsWriter, OrdersByReferenceDtypeEnumDescendingThenName) {
  const auto out = serialize_safetensors_header({{"u", DType::U32, {1}},
                                                 {"b", DType::F32, {2}},
                                                 {"a", DType::F32, {1}},
                                                 {"i", DType::I32, {1}},
                                                 {"m", DType::I64, {}},
                                                 {"z", DType::BOOL, {3}},
                                                 {"h", DType::BF16, {1}},
                                                 {"f", DType::F16, {1}}},
                                                {{"format", "pt"}, {"epoch", "3"}});
  const std::string json =
      R"({"__metadata__":{"epoch":"3","format":"pt"},"m":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},)"
      R"("u":{"dtype":"U32","shape":[1],"data_offsets":[20,24]},"i":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},)"
      R"("h":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},"f":{"dtype":"F16","shape":[1],"data_offsets":[30,32]},)"
      R"("z":{"dtype":"BOOL","shape":[3],"data_offsets":[32,35]}})";
  const std::size_t padded = (json.size() + 7) / 8 * 8;
  EXPECT_EQ(out.bytes, le64(padded) + json + std::string(padded - json.size(), ' '));
  EXPECT_EQ(out.bytes.size() % 8, 0u);
  // What we write, we read back.
  const std::string file = out.bytes + std::string(out.data_bytes, '\0');
  const auto h = parse(file);
  EXPECT_EQ(h.tensors.size(), 8u);
  EXPECT_EQ(h.metadata.at("epoch"), "3");
}

TEST(SafetensorsWriter, EmptyHeaderAndDuplicates) {
  EXPECT_EQ(serialize_safetensors_header({}, {}).bytes, le64(8) + "{}      ");
  EXPECT_THROW(serialize_safetensors_header({{"a", DType::F32, {1}}, {"a", DType::F32, {1}}}, {}), UsageError);
}

}  // namespace
}  // namespace ckptio::detail
