// The root lock's takeover rules that need no running Slurm (docs/SLURM.md, "The root lock
// across nodes"); the rules that ask Slurm are tested on the virtual cluster
// (tests/multinode/root_lock.sh, node_killed.sh).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ckptio/error.hpp"
#include "io/root_lock.hpp"

namespace ckptio::detail {
namespace {

namespace fs = std::filesystem;

// A scratch root, and this process seen as run `job` of Slurm cluster `cluster` ("" unsets).
class RootLockRules : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("SLURM_JOB_ID");  // also when the tests themselves run inside a Slurm job
    ::unsetenv("SLURM_CLUSTER_NAME");
    root_ = fs::temp_directory_path() / ("ckptio-root-lock-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    ::unsetenv("SLURM_JOB_ID");
    ::unsetenv("SLURM_CLUSTER_NAME");
    fs::remove_all(root_);
  }
  void as_job(const std::string& job, const std::string& cluster) {
    ::setenv("SLURM_JOB_ID", job.c_str(), 1);
    ::setenv("SLURM_CLUSTER_NAME", cluster.c_str(), 1);
  }
  void write_lock(const std::string& host, const std::string& job, const std::string& cluster) {
    std::ofstream(root_ / RootLock::kFileName)
        << R"({"host":")" << host << R"(","pid":1,"slurm_job_id":")" << job << R"(","slurm_cluster":")" << cluster
        << R"(","since":"2026-01-01T00:00:00Z"})";
  }
  std::string refusal(const std::string& squeue = "squeue") {
    try {
      RootLock lock(root_, squeue);
    } catch (const LockedError& e) {
      return e.what();
    }
    return "(taken over)";
  }
  fs::path root_;
};

TEST_F(RootLockRules, AnEarlierRunOfThisJobOnAnotherHostIsTakenOver) {
  as_job("4242", "clusterA");
  write_lock("another-node", "4242", "clusterA");
  EXPECT_EQ(refusal(), "(taken over)");
}

TEST_F(RootLockRules, TheSameJobIdOfAnotherClusterIsRefused) {
  as_job("4242", "clusterA");
  write_lock("another-node", "4242", "clusterB");
  EXPECT_NE(refusal().find("the holder ran on another Slurm cluster (clusterB)"), std::string::npos) << refusal();
}

TEST_F(RootLockRules, AnotherJobIsRefusedWhenSlurmDoesNotAnswer) {
  as_job("4243", "clusterA");
  write_lock("another-node", "4242", "clusterA");
  const std::string message = refusal("/nonexistent/squeue");
  EXPECT_NE(message.find("pid 1 on host another-node, Slurm job 4242"), std::string::npos) << message;
  EXPECT_NE(message.find("Slurm did not say whether job 4242 has ended"), std::string::npos) << message;
}

TEST_F(RootLockRules, AProcessOutsideSlurmCannotProveAnotherHostsJobEnded) {
  write_lock("another-node", "4242", "clusterA");
  EXPECT_NE(refusal().find("only a Slurm job of the same cluster can ask Slurm"), std::string::npos) << refusal();
}

TEST_F(RootLockRules, AnotherHostWithoutSlurmIsNeverTakenOver) {
  as_job("4243", "clusterA");
  write_lock("another-node", "", "");
  EXPECT_NE(refusal().find("a holder on another host without a Slurm job cannot be proven gone"), std::string::npos)
      << refusal();
}

}  // namespace
}  // namespace ckptio::detail
