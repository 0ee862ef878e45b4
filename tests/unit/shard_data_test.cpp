// ShardData: a shard's memory remembers whether it may be written, so that a shard made
// from read-only memory can be saved from but never loaded into.
#include <gtest/gtest.h>

#include <type_traits>
#include <vector>

#include "ckptio/shard.hpp"

namespace ckptio {
namespace {

TEST(ShardData, ConstPointersMakeReadOnlyShards) {
  const std::vector<float> weights(6, 1.0f);
  const TensorShard shard = TensorShard::whole(weights.data(), DType::F32, {2, 3});
  EXPECT_EQ(shard.data.get(), weights.data());
  EXPECT_EQ(shard.data.writable(), nullptr);
  EXPECT_TRUE(shard.data.read_only());
  EXPECT_TRUE(static_cast<bool>(shard.data));
}

TEST(ShardData, MutablePointersMakeWritableShards) {
  std::vector<float> weights(6, 1.0f);
  const TensorShard whole = TensorShard::whole(weights.data(), DType::F32, {2, 3});
  const TensorShard block = TensorShard::block(weights.data(), DType::F32, {4, 3}, {2, 0}, {2, 3});
  const TensorShard flat = TensorShard::flat(weights.data(), DType::F32, {4, 3}, 6, 12);
  for (const TensorShard* shard : {&whole, &block, &flat}) {
    EXPECT_EQ(shard->data.get(), weights.data());
    EXPECT_EQ(shard->data.writable(), weights.data());
    EXPECT_FALSE(shard->data.read_only());
  }
}

TEST(ShardData, AssignmentKeepsThePointersConstness) {
  std::vector<float> buffer(6);
  const std::vector<float> constant(6);
  TensorShard shard = TensorShard::whole(constant.data(), DType::F32, {6});
  shard.data = buffer.data();
  EXPECT_EQ(shard.data.writable(), buffer.data());
  shard.data = constant.data();
  EXPECT_TRUE(shard.data.read_only());
  shard.data = nullptr;
  EXPECT_FALSE(shard.data);
  EXPECT_FALSE(shard.data.read_only());  // no memory is not read-only memory
  EXPECT_EQ(shard.data.get(), nullptr);
}

TEST(ShardData, NoConversionBackToAMutablePointer) {
  // Only writable() hands out a mutable pointer: nothing converts ShardData to void*.
  EXPECT_FALSE((std::is_convertible_v<ShardData, void*>));
  EXPECT_FALSE((std::is_convertible_v<ShardData, const void*>));
  EXPECT_TRUE((std::is_convertible_v<const float*, ShardData>));
  EXPECT_TRUE((std::is_convertible_v<float*, ShardData>));
}

}  // namespace
}  // namespace ckptio
