// Slurm's time format as `squeue -o %L` prints the remaining time of a job.
#include <gtest/gtest.h>

#include <chrono>

#include "core/spawn.hpp"

namespace ckptio::detail {
namespace {

TEST(SlurmDuration, ParsesEveryFormSqueuePrints) {
  EXPECT_EQ(parse_slurm_duration("45"), 45);
  EXPECT_EQ(parse_slurm_duration("1:05"), 65);
  EXPECT_EQ(parse_slurm_duration("2:00:30\n"), 7230);
  EXPECT_EQ(parse_slurm_duration("  59:59 "), 3599);
  EXPECT_EQ(parse_slurm_duration("1-00:00:10"), 86410);
  EXPECT_EQ(parse_slurm_duration("3-04"), 3 * 86400 + 4 * 3600);
  EXPECT_EQ(parse_slurm_duration("3-04:05"), 3 * 86400 + 4 * 3600 + 5 * 60);
}

TEST(SlurmDuration, NoLimitOrGarbageIsNoDuration) {
  for (const char* text : {"UNLIMITED", "NOT_SET", "INVALID", "", "1:2:3:4", "1::2", "-5", "12a", "1-"})
    EXPECT_EQ(parse_slurm_duration(text), std::nullopt) << "'" << text << "'";
}

TEST(Spawn, ReportsAMissingProgramAndCapturesOutput) {
  const SpawnResult missing = spawn_and_wait({"/nonexistent/scontrol", "requeue"});
  EXPECT_FALSE(missing.started && missing.exit_status == 0);
  const SpawnResult echo = spawn_and_wait({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(echo.started);
  EXPECT_EQ(echo.exit_status, 3);
  EXPECT_EQ(echo.output, "out\nerr\n");
}

}  // namespace
}  // namespace ckptio::detail

namespace ckptio::detail {
namespace {

TEST(Spawn, KillsAProgramThatRunsPastItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const SpawnResult slow = spawn_and_wait({"sleep", "30"}, 0.5);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);
  EXPECT_EQ(slow.exit_status, 128 + 9);
  EXPECT_EQ(slow.error, "sleep timed out after 0.5 s");
}

}  // namespace
}  // namespace ckptio::detail
