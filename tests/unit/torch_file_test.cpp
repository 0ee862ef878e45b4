// The weights-only .pt reader on archives and pickles built byte by byte: what torch
// writes must read back exactly; hostile input must fail with an exact message.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ckptio/error.hpp"
#include "ckptio/torch_file.hpp"
#include "torch_test_support.hpp"

namespace ckptio {
namespace {

using test::build_zip;
using test::PickleBuilder;
using test::ZipSpec;

std::string floats(const std::vector<float>& values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<float> as_floats(const std::vector<std::uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::span<const std::uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A torch.save-like archive: <folder>/data.pkl, <folder>/data/<key>..., <folder>/version.
std::string archive(const std::string& pickle, std::vector<std::pair<std::string, std::string>> storages,
                    const std::string& folder = "archive", bool zip64 = false, std::size_t align = 0) {
  ZipSpec spec;
  spec.zip64 = zip64;
  spec.align = align;
  spec.entries.push_back({folder + "/data.pkl", pickle});
  for (auto& [key, data] : storages) spec.entries.push_back({folder + "/data/" + key, data});
  spec.entries.push_back({folder + "/version", "3\n"});
  return build_zip(spec);
}

// {"w": tensor}
std::string one_tensor_pickle(const std::string& storage_class, std::int32_t numel, std::int32_t offset,
                              const std::vector<std::int32_t>& size, const std::vector<std::int32_t>& stride) {
  return PickleBuilder().op('}').str("w").tensor(storage_class, "0", numel, offset, size, stride).op('s').done();
}

std::string error_of(const std::string& bytes) {
  try {
    TorchFile file(span_of(bytes), "t.pt");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no error";
}

TEST(TorchFile, ReadsTensorsAndValuesWithDottedNames) {
  // {"model": {"w": F32[2,3]}, "epoch": 3, "opt": {"lr": "x", "ids": [1, 2]}}
  const std::string pickle = PickleBuilder()
                                 .op('}')
                                 .mark()
                                 .str("model")
                                 .global("collections", "OrderedDict")
                                 .op(')')
                                 .op('R')
                                 .str("w")
                                 .tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1})
                                 .op('s')
                                 .str("epoch")
                                 .integer(3)
                                 .str("opt")
                                 .op('}')
                                 .str("lr")
                                 .str("x")
                                 .op('s')
                                 .str("ids")
                                 .mark()
                                 .integer(1)
                                 .integer(2)
                                 .op('l')
                                 .op('s')
                                 .op('u')
                                 .done();
  const std::string bytes = archive(pickle, {{"0", floats({0, 1, 2, 3, 4, 5})}}, "mymodel");
  TorchFile file(span_of(bytes), "t.pt");
  EXPECT_EQ(file.folder(), "mymodel");
  ASSERT_EQ(file.tensors().size(), 1u);
  const auto& t = file.tensors()[0];
  EXPECT_EQ(t.name, "model.w");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, (Shape{2, 3}));
  EXPECT_EQ(t.bytes, 24u);
  EXPECT_TRUE(t.contiguous);
  EXPECT_EQ(as_floats(file.read(0)), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  ASSERT_EQ(file.values().size(), 2u);
  EXPECT_EQ(file.values()[0].first, "epoch");
  EXPECT_EQ(file.values()[0].second, 3);
  EXPECT_EQ(file.values()[1].first, "opt");
  EXPECT_EQ(file.values()[1].second, nlohmann::json::parse(R"({"lr": "x", "ids": [1, 2]})"));
  EXPECT_NE(file.find("model.w"), nullptr);
  EXPECT_EQ(file.find("model"), nullptr);
}

TEST(TorchFile, GathersNonContiguousViewsAndReadsRangesAndBlocks) {
  // Storage 0..11; the view starts at 1 with shape [3, 2] and stride [1, 4] (a transpose).
  std::vector<float> storage(12);
  for (int i = 0; i < 12; ++i) storage[i] = static_cast<float>(i);
  const std::string bytes = archive(one_tensor_pickle("FloatStorage", 12, 1, {3, 2}, {1, 4}), {{"0", floats(storage)}});
  TorchFile file(span_of(bytes), "t.pt");
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_FALSE(file.tensors()[0].contiguous);
  EXPECT_EQ(as_floats(file.read(0)), (std::vector<float>{1, 5, 2, 6, 3, 7}));
  std::vector<float> part(3);
  file.read_elements(0, 2, 5, part.data());
  EXPECT_EQ(part, (std::vector<float>{2, 6, 3}));
  std::vector<float> block(2);
  file.read_block(0, Block{{1, 0}, {2, 1}}, block.data());
  EXPECT_EQ(block, (std::vector<float>{2, 3}));
  EXPECT_THROW(file.read_elements(0, 4, 7, part.data()), UsageError);
}

TEST(TorchFile, ReadsPiecesAndChecksDtypeAndShape) {
  const std::string bytes =
      archive(one_tensor_pickle("FloatStorage", 6, 0, {2, 3}, {3, 1}), {{"0", floats({0, 1, 2, 3, 4, 5})}});
  TorchFile file(span_of(bytes), "t.pt");
  std::vector<float> out(2);
  file.read_piece(0, DType::F32, {2, 3}, FlatRange{3, 5}, out.data());
  EXPECT_EQ(out, (std::vector<float>{3, 4}));
  file.read_piece(0, DType::F32, {2, 3}, Block{{0, 2}, {2, 1}}, out.data());
  EXPECT_EQ(out, (std::vector<float>{2, 5}));
  try {
    file.read_piece(0, DType::F16, {2, 3}, FlatRange{0, 1}, out.data());
    ADD_FAILURE();
  } catch (const MismatchError& e) {
    EXPECT_STREQ(e.what(), "t.pt: tensor 'w' is F32 in the file but F16 was requested");
  }
  try {
    file.read_piece(0, DType::F32, {3, 2}, FlatRange{0, 1}, out.data());
    ADD_FAILURE();
  } catch (const MismatchError& e) {
    EXPECT_STREQ(e.what(), "t.pt: tensor 'w' has shape [2, 3] in the file but [3, 2] was requested");
  }
}

TEST(TorchFile, ReadsArchivesWithPaddedLocalHeaders) {
  // PyTorch 2 aligns each entry's data to 64 bytes with a local-only extra field and adds
  // entries such as .data/serialization_id.
  ZipSpec spec;
  spec.align = 64;
  spec.entries = {{"archive/data.pkl", one_tensor_pickle("BFloat16Storage", 2, 0, {2}, {1})},
                  {"archive/byteorder", "little"},
                  {"archive/data/0", std::string("\x80\x3f\x00\x40", 4)},
                  {"archive/version", "3\n"},
                  {"archive/.data/serialization_id", "1234"}};
  const std::string bytes = build_zip(spec);
  ASSERT_EQ(bytes.find(std::string("\x80\x3f\x00\x40", 4)) % 64, 0u);
  TorchFile file(span_of(bytes), "t.pt");
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].dtype, DType::BF16);
  const auto data = file.read(0);
  EXPECT_EQ(std::string(data.begin(), data.end()), std::string("\x80\x3f\x00\x40", 4));
}

TEST(TorchFile, ReadsZip64Archives) {
  const std::string bytes = archive(one_tensor_pickle("LongStorage", 2, 0, {2}, {1}),
                                    {{"0", std::string("\x07\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 16)}},
                                    "archive", /*zip64=*/true);
  TorchFile file(span_of(bytes), "t.pt");
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].dtype, DType::I64);
  const auto data = file.read(0);
  std::int64_t values[2];
  std::memcpy(values, data.data(), 16);
  EXPECT_EQ(values[0], 7);
  EXPECT_EQ(values[1], -1);
}

TEST(TorchFileHostile, RefusesGlobalsOutsideTheAllowListAndExecutesNothing) {
  const auto marker = std::filesystem::temp_directory_path() / "ckptio_torch_file_test_marker";
  std::filesystem::remove(marker);
  const std::string os_system =
      PickleBuilder().global("os", "system").mark().str("touch " + marker.string()).op('t').op('R').done();
  EXPECT_EQ(error_of(archive(os_system, {})),
            "t.pt: refusing global 'os.system': it is not on the weights-only allow-list (pickle offset 2)");
  EXPECT_FALSE(std::filesystem::exists(marker));
  const std::string eval = PickleBuilder().str("builtins").str("eval").op('\x93').done();
  EXPECT_EQ(error_of(archive(eval, {})),
            "t.pt: refusing global 'builtins.eval': it is not on the weights-only allow-list (pickle offset 24)");
}

TEST(TorchFileHostile, RefusesReduceOnAnythingButTheRebuildFunctions) {
  // An allow-listed storage class is a type, not something a pickle may call.
  const std::string call_storage =
      PickleBuilder().global("torch", "FloatStorage").mark().integer(5).op('t').op('R').done();
  EXPECT_EQ(error_of(archive(call_storage, {})), "t.pt: refusing to call 'torch.FloatStorage' (pickle offset 29)");
  // REDUCE with a string as the callable.
  const std::string call_string = PickleBuilder().str("os.system").op(')').op('R').done();
  EXPECT_EQ(error_of(archive(call_string, {})), "t.pt: REDUCE on a str (pickle offset 17)");
  // BUILD to set state on something that is not a dict or tensor.
  const std::string build_list = PickleBuilder().op(']').op('}').op('b').done();
  EXPECT_EQ(error_of(archive(build_list, {})), "t.pt: BUILD on a list is not allowed (pickle offset 4)");
  // Opcodes that import by other routes (INST, OBJ, EXT1) are not understood at all.
  const std::string inst = PickleBuilder().raw("ios\nsystem\n").done();
  EXPECT_EQ(error_of(archive(inst, {})),
            "t.pt: unsupported pickle opcode 0x69 (not used by weights-only state dicts) (pickle offset 2)");
}

TEST(TorchFileHostile, RefusesHugeDeclaredStorages) {
  // 2^31 - 1 doubles declared, 8 bytes present.
  EXPECT_EQ(
      error_of(archive(one_tensor_pickle("DoubleStorage", 2147483647, 0, {1}, {1}), {{"0", std::string(8, '\0')}})),
      "t.pt: storage '0' declares 2147483647 elements of F64 (17179869176 bytes) but its entry archive/data/0 "
      "holds 8 bytes");
  // A view reaching past its storage.
  EXPECT_EQ(error_of(archive(one_tensor_pickle("FloatStorage", 4, 1, {2, 2}, {2, 1}), {{"0", floats({1, 2, 3, 4})}})),
            "t.pt: a tensor view (offset 1, size [2, 2], stride [2, 1]) reaches past the end of storage '0' (4 "
            "elements) (pickle offset 155)");
  // A size that needs more than 64 bits.
  const std::string huge = PickleBuilder()
                               .op('}')
                               .str("w")
                               .global("torch._utils", "_rebuild_tensor_v2")
                               .mark()
                               .storage("FloatStorage", "0", 1)
                               .integer(0)
                               .mark()
                               .raw("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f")
                               .raw("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f")
                               .op('t')
                               .int_tuple({1, 1})
                               .op('\x89')
                               .global("collections", "OrderedDict")
                               .op(')')
                               .op('R')
                               .op('t')
                               .op('R')
                               .op('s')
                               .done();
  EXPECT_EQ(error_of(archive(huge, {{"0", floats({1})}})).substr(0, 29), "t.pt: a tensor size overflows");
  // A stride-0 view of one double claiming 2^63 - 2^33 + 2 elements: its bytes overflow.
  EXPECT_EQ(error_of(archive(one_tensor_pickle("DoubleStorage", 1, 0, {2147483647, 2147483647, 2}, {0, 0, 0}),
                             {{"0", std::string(8, '\0')}}))
                .substr(0, 27),
            "t.pt: a tensor is too large");
}

TEST(TorchFileHostile, EveryTruncationFailsCleanly) {
  const std::string bytes = archive(one_tensor_pickle("FloatStorage", 2, 0, {2}, {1}), {{"0", floats({1, 2})}});
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::string cut = bytes.substr(0, n);
    EXPECT_THROW(TorchFile(span_of(cut), "t.pt"), FormatError) << n;
  }
  EXPECT_EQ(error_of(bytes.substr(0, bytes.size() - 1)),
            "t.pt: not a valid .pt zip archive: no end of central directory record (truncated or not a zip file)");
  // A truncated pickle inside a valid archive.
  const std::string pickle = one_tensor_pickle("FloatStorage", 2, 0, {2}, {1});
  EXPECT_EQ(error_of(archive(pickle.substr(0, 20), {{"0", floats({1, 2})}})),
            "t.pt: truncated pickle (pickle offset 9)");
}

// Little-endian patch of `n` bytes at `at`.
std::string patched(std::string bytes, std::size_t at, std::uint64_t value, int n) {
  for (int i = 0; i < n; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}

TEST(TorchFileHostile, RefusesHugeDeclaredZipSizesAndCounts) {
  ZipSpec spec;
  spec.entries.push_back({"archive/data.pkl", PickleBuilder().op('}').done()});
  const std::string bytes = build_zip(spec);
  const std::size_t central = bytes.size() - 22 - 46 - spec.entries[0].name.size();
  // The entry claims 4 GiB - 16 bytes, compressed and not.
  EXPECT_EQ(error_of(patched(patched(bytes, central + 20, 0xFFFFFFF0, 4), central + 24, 0xFFFFFFF0, 4)),
            "t.pt: not a valid .pt zip archive: the data of entry 'archive/data.pkl' (4294967280 bytes) runs past the "
            "central directory (truncated archive?)");
  // The end record claims 65535 entries.
  EXPECT_EQ(error_of(patched(patched(bytes, bytes.size() - 12, 0xFFFF, 2), bytes.size() - 14, 0xFFFF, 2)),
            "t.pt: not a valid .pt zip archive: the end record asks for ZIP64 but there is no ZIP64 locator");
  EXPECT_EQ(error_of(patched(patched(bytes, bytes.size() - 12, 0xFFFE, 2), bytes.size() - 14, 0xFFFE, 2)),
            "t.pt: not a valid .pt zip archive: the end record declares 65534 entries, more than the central "
            "directory can hold");
  // ZIP64: an entry of 2^63 bytes.
  spec.zip64 = true;
  const std::string z64 = build_zip(spec);
  const std::size_t extra = z64.find(std::string("\x01\x00\x18\x00", 4)) + 4;
  EXPECT_EQ(error_of(patched(patched(z64, extra, 1ULL << 63, 8), extra + 8, 1ULL << 63, 8)),
            "t.pt: not a valid .pt zip archive: the data of entry 'archive/data.pkl' (9223372036854775808 bytes) runs "
            "past the central directory (truncated archive?)");
}

TEST(TorchFileHostile, RefusesEscapingAndCompressedEntries) {
  ZipSpec spec;
  spec.entries.push_back({"archive/data.pkl", PickleBuilder().op('}').done()});
  spec.entries.push_back({"archive/../../etc/x", "x"});
  EXPECT_EQ(error_of(build_zip(spec)), "t.pt: zip entry name 'archive/../../etc/x' is not allowed (contains '..')");
  spec.entries[1].name = "/etc/passwd";
  EXPECT_EQ(error_of(build_zip(spec)), "t.pt: zip entry name '/etc/passwd' is not allowed (absolute path)");
  spec.entries[1] = {"archive/data/0", "xx", 8};
  EXPECT_EQ(error_of(build_zip(spec)),
            "t.pt: zip entry 'archive/data/0' is compressed (method 8); only stored entries are supported, as "
            "torch.save writes them");
  spec.entries[1] = {"other/data/0", "xx"};
  EXPECT_EQ(error_of(build_zip(spec)),
            "t.pt: the archive has more than one top-level folder ('archive' and the folder of 'other/data/0')");
}

TEST(TorchFileHostile, RefusesOtherShapesOfInput) {
  // A legacy file's magic number and nothing after it.
  EXPECT_EQ(error_of(std::string("\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20j\xa8P\x19.", 15)),
            "t.pt: truncated pickle (pickle offset 15)");
  EXPECT_EQ(error_of(PickleBuilder().op('}').done()),
            "t.pt: a pickle, not a torch.save file (neither a zip archive nor a legacy torch.save file)");
  EXPECT_EQ(error_of("hello"), "t.pt: not a PyTorch .pt file (not a zip archive)");
  EXPECT_EQ(error_of(archive(PickleBuilder().op(']').done(), {})),
            "t.pt: the top-level object is a list, expected a dict (a state dict)");
  ZipSpec big_endian;
  big_endian.entries = {{"archive/data.pkl", PickleBuilder().op('}').done()}, {"archive/byteorder", "big"}};
  EXPECT_EQ(error_of(build_zip(big_endian)), "t.pt: byte order 'big' is not supported (only little-endian)");
  EXPECT_EQ(error_of(archive(one_tensor_pickle("FloatStorage", 1, 0, {1}, {1}), {})),
            "t.pt: storage '0' of tensor 'w' has no entry archive/data/0");
  // {"a.b": t, "a": {"b": t}}
  const std::string clash = PickleBuilder()
                                .op('}')
                                .str("a.b")
                                .tensor("FloatStorage", "0", 1, 0, {}, {})
                                .op('q')
                                .raw("\x01")
                                .op('s')
                                .str("a")
                                .op('}')
                                .str("b")
                                .op('h')
                                .raw("\x01")
                                .op('s')
                                .op('s')
                                .done();
  EXPECT_EQ(error_of(archive(clash, {{"0", floats({1})}})), "t.pt: two tensors are both named 'a.b'");
  // A list that contains itself: refused without recursing forever or leaking.
  const std::string cycle = PickleBuilder()
                                .op('}')
                                .str("x")
                                .op(']')
                                .op('q')
                                .raw(std::string(1, '\0'))
                                .op('h')
                                .raw(std::string(1, '\0'))
                                .op('a')
                                .op('s')
                                .done();
  EXPECT_EQ(error_of(archive(cycle, {})), "t.pt: the pickle nests containers deeper than 100 levels");
}

// A legacy (PyTorch < 1.6) file: five pickles, then storage "k1" as a count and its floats.
std::string legacy_file(std::uint64_t count, const std::vector<float>& data) {
  std::string out("\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20j\xa8P\x19.", 15);
  out += PickleBuilder().raw("M\xe9\x03").done();
  out += PickleBuilder().op('}').str("little_endian").op('\x88').op('s').done();
  out += PickleBuilder()
             .op('}')
             .str("w")
             .global("torch._utils", "_rebuild_tensor_v2")
             .mark()
             .mark()
             .str("storage")
             .global("torch", "FloatStorage")
             .str("k1")
             .str("cpu")
             .integer(2)
             .op('N')
             .op('t')
             .op('Q')
             .integer(0)
             .int_tuple({2})
             .int_tuple({1})
             .op('\x89')
             .global("collections", "OrderedDict")
             .op(')')
             .op('R')
             .op('t')
             .op('R')
             .op('s')
             .done();
  out += PickleBuilder().mark().str("k1").op('l').done();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((count >> (8 * i)) & 0xFF);
  return out + floats(data);
}

TEST(TorchFile, ReadsLegacyFiles) {
  const std::string bytes = legacy_file(2, {1.5f, 2.5f});
  TorchFile file(span_of(bytes), "t.pt");
  EXPECT_EQ(file.folder(), "");
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].name, "w");
  EXPECT_EQ(as_floats(file.read(0)), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_EQ(error_of(legacy_file(3, {1.5f, 2.5f})), "t.pt: storage 'k1' declares 2 elements but its data holds 3");
  EXPECT_EQ(error_of(legacy_file(2, {1.5f})), "t.pt: truncated file: the data of storage 'k1' needs bytes [" +
                                                  std::to_string(bytes.size() - 8) + ", " +
                                                  std::to_string(bytes.size() - 8) + "+8) but the file has " +
                                                  std::to_string(bytes.size() - 4) + " bytes");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(TorchFile(span_of(bytes.substr(0, n)), "t.pt"), FormatError) << n;
  }
}

}  // namespace
}  // namespace ckptio
