#include <gtest/gtest.h>

#include "ckptio/error.hpp"
#include "ckptio/state_dict.hpp"

namespace ckptio {
namespace {

TEST(StateDict, KeepsInsertionOrderAndFinds) {
  float a[4] = {}, b[2] = {};
  StateDict sd;
  sd.add("z.weight", TensorShard::whole(a, DType::F32, {4})).add("a.bias", TensorShard::whole(b, DType::F32, {2}));
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd.entries()[0].first, "z.weight");
  EXPECT_EQ(sd.entries()[1].first, "a.bias");
  ASSERT_NE(sd.find("a.bias"), nullptr);
  EXPECT_EQ(sd.find("a.bias")->data.get(), b);
  EXPECT_EQ(sd.find("missing"), nullptr);
}

TEST(StateDict, RejectsBadAndDuplicateNames) {
  float a[1] = {};
  StateDict sd;
  EXPECT_THROW(sd.add("", TensorShard::whole(a, DType::F32, {1})), UsageError);
  EXPECT_THROW(sd.add("blocks/0", TensorShard::whole(a, DType::F32, {1})), UsageError);
  EXPECT_THROW(sd.add(".", TensorShard::whole(a, DType::F32, {1})), UsageError);
  EXPECT_THROW(sd.add("..", TensorShard::whole(a, DType::F32, {1})), UsageError);
  sd.add("w", TensorShard::whole(a, DType::F32, {1}));
  try {
    sd.add("w", TensorShard::whole(a, DType::F32, {1}));
    FAIL() << "duplicate accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "tensor 'w' was added twice to the same StateDict");
  }
}

TEST(TensorShard, ElementCounts) {
  float a[12] = {};
  EXPECT_EQ(TensorShard::whole(a, DType::F32, {3, 4}).local_elements(), 12);
  EXPECT_EQ(TensorShard::whole(a, DType::F32, {}).local_elements(), 1);  // scalar
  EXPECT_EQ(TensorShard::block(a, DType::F32, {3, 4}, {1, 0}, {2, 4}).local_elements(), 8);
  auto f = TensorShard::flat(a, DType::F16, {3, 4}, 5, 11);
  EXPECT_EQ(f.local_elements(), 6);
  EXPECT_EQ(f.local_bytes(), 12u);
  EXPECT_EQ(f.global_elements(), 12);
}

}  // namespace
}  // namespace ckptio
