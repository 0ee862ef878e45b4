// Resource limits of the .pt reader: a few hundred bytes must not become gigabytes. A
// stride-0 view may add only a bounded number of bytes beyond its storage; a pickle that
// shares one container many times may flatten to only so many tensors and values.
#include <gtest/gtest.h>

#include <cstring>

#include "ckptio/error.hpp"
#include "ckptio/torch_file.hpp"
#include "torch_test_support.hpp"

namespace ckptio {
namespace {

using test::build_zip;
using test::PickleBuilder;
using test::ZipSpec;

std::string archive(const std::string& pickle, const std::string& storage) {
  ZipSpec spec;
  spec.entries.push_back({"archive/data.pkl", pickle});
  spec.entries.push_back({"archive/data/0", storage});
  spec.entries.push_back({"archive/version", "3\n"});
  return build_zip(spec);
}

std::string error_of(const std::string& bytes) {
  try {
    TorchFile file(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()),
                   "t.pt");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no error";
}

std::string expanded(std::int32_t elements) {
  return archive(PickleBuilder().op('}').str("w").tensor("FloatStorage", "0", 1, 0, {elements}, {0}).op('s').done(),
                 std::string(4, '\0'));
}

TEST(TorchFileLimits, StrideZeroViewsMayAddOnlySoMuch) {
  // 16 Mi elements of F32 from one stored float: exactly 64 MiB - 4 bytes added, accepted.
  EXPECT_EQ(error_of(expanded(1 << 24)), "no error");
  // 2^28 elements: 1 GiB from a 4-byte storage (the probe's 700-byte .pt), refused.
  EXPECT_EQ(error_of(expanded(1 << 28)),
            "t.pt: tensor 'w' is a view of 268435456 elements on a storage of 1 (a stride-0 broadcast?); such views "
            "may add at most 64 MiB beyond the data the file holds");
}

TEST(TorchFileLimits, SharedContainersFlattenToBoundedEntries) {
  // tensor -> memo 0; list_i = [list_{i-1}, list_{i-1}] -> memo i; {"model": list_22}:
  // 2^22 tensors once flattened, from a pickle of a few hundred bytes.
  PickleBuilder b;
  b.op('}').str("model");
  b.tensor("FloatStorage", "0", 1, 0, {1}, {1}).raw(std::string("q\x00", 2)).op('0');
  const int levels = 22;
  for (int i = 1; i <= levels; ++i) {
    b.op(']').raw("q" + std::string(1, static_cast<char>(i))).mark();
    b.raw("h" + std::string(1, static_cast<char>(i - 1))).raw("h" + std::string(1, static_cast<char>(i - 1)));
    b.op('e').op('0');
  }
  b.raw("h" + std::string(1, static_cast<char>(levels))).op('s');
  const std::string bytes = archive(b.done(), std::string(4, '\0'));
  EXPECT_LT(bytes.size(), 1000u);
  EXPECT_EQ(error_of(bytes),
            "t.pt: the pickle flattens to more than 1000000 tensors and values (or 64 MiB of names): a container "
            "shared too many times?");
}

}  // namespace
}  // namespace ckptio
