// Who owns what in the public API: objects that others refer to by address cannot be moved
// or copied, so nothing can be left pointing at a moved-from one.
#include <gtest/gtest.h>

#include <type_traits>

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/preemption_guard.hpp"

namespace ckptio {
namespace {

// A PreemptionGuard keeps the address of its CheckpointIO, and a save in flight the address
// of its own: neither may move.
TEST(ApiOwnership, CheckpointIoIsNeitherCopyableNorMovable) {
  EXPECT_FALSE(std::is_copy_constructible_v<CheckpointIO>);
  EXPECT_FALSE(std::is_copy_assignable_v<CheckpointIO>);
  EXPECT_FALSE(std::is_move_constructible_v<CheckpointIO>);
  EXPECT_FALSE(std::is_move_assignable_v<CheckpointIO>);
}

// A reduction in flight points into the guard's state.
TEST(ApiOwnership, PreemptionGuardIsNeitherCopyableNorMovable) {
  EXPECT_FALSE(std::is_copy_constructible_v<PreemptionGuard>);
  EXPECT_FALSE(std::is_copy_assignable_v<PreemptionGuard>);
  EXPECT_FALSE(std::is_move_constructible_v<PreemptionGuard>);
  EXPECT_FALSE(std::is_move_assignable_v<PreemptionGuard>);
}

}  // namespace
}  // namespace ckptio
