// Hostile file-system state: files are created with permissions that respect the umask,
// and symlinks planted in place of a `.partial`, `latest` or the lock file are replaced or
// refused, never written through to the file outside the root they point to.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "support/agreement.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

const std::vector<TensorSpec> kSpecs = {{"model", "w", DType::F32, {16, 8}, Layout::Dim0Blocks}};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode;
}

TEST(Hostile, FilesRespectTheUmask) {
  SharedTempDir dir;
  const mode_t old = ::umask(027);
  {
    TestState state(kSpecs, world_rank(), world_size());
    state.fill();
    CheckpointIO io(MPI_COMM_WORLD, dir / "root");
    const fs::path file = io.save(state.snapshot());
    if (world_rank() == 0) {
      for (const fs::path& p : {file, dir / "root" / "latest", dir / "root" / ".ckptio.lock"}) {
        EXPECT_EQ(mode_of(p) & 027, 0u) << p << " mode " << std::oct << (mode_of(p) & 0777);
        EXPECT_TRUE(S_ISREG(mode_of(p))) << p;
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  ::umask(old);
}

TEST(Hostile, PlantedSymlinksAreNeverWrittenThrough) {
  SharedTempDir dir;
  const fs::path root = dir / "root";
  const fs::path outside = dir / "outside";
  const std::string precious = "precious data outside the root\n";
  if (world_rank() == 0) {
    fs::create_directories(root);
    fs::create_directories(outside);
    for (const char* name : {"victim_partial", "victim_latest"}) std::ofstream(outside / name) << precious;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  {
    CheckpointIO io(MPI_COMM_WORLD, root);
    state.snapshot().running.global_step = 10;
    io.save(state.snapshot());
    if (world_rank() == 0) {
      fs::create_symlink(outside / "victim_partial", root / "epoch0-global_step20.h5.partial");
      fs::remove(root / "latest");
      fs::create_symlink(outside / "victim_latest", root / "latest");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    state.snapshot().running.global_step = 20;
    io.save(state.snapshot());
    if (world_rank() == 0) {
      EXPECT_EQ(slurp(outside / "victim_partial"), precious);
      EXPECT_EQ(slurp(outside / "victim_latest"), precious);
      EXPECT_FALSE(fs::is_symlink(root / "latest"));
      EXPECT_EQ(slurp(root / "latest"), "epoch0-global_step20.h5\n");
      EXPECT_FALSE(fs::exists(fs::symlink_status(root / "epoch0-global_step20.h5.partial")));
    }
    TestState loaded(kSpecs, world_rank(), world_size());
    loaded.poison();
    const auto r = io.load_latest(loaded.snapshot());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->running.global_step, 20);
    EXPECT_EQ(loaded.check(), "");
  }
  // A symlink in place of the lock file: refused, the target untouched.
  if (world_rank() == 0) {
    std::ofstream(outside / "victim_lock") << precious;
    fs::create_symlink(outside / "victim_lock", root / ".ckptio.lock");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto msg = expect_agreed_error<LockedError>([&] { CheckpointIO io(MPI_COMM_WORLD, root); });
  EXPECT_NE(msg.find("has a lock file that cannot be read"), std::string::npos) << msg;
  if (world_rank() == 0) EXPECT_EQ(slurp(outside / "victim_lock"), precious);
  // A `latest` that is a symlink is not followed when loading either.
  if (world_rank() == 0) {
    fs::remove(root / ".ckptio.lock");
    fs::remove(root / "latest");
    std::ofstream(outside / "victim_latest2") << "epoch0-global_step10.h5\n";
    fs::create_symlink(outside / "victim_latest2", root / "latest");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, root, {.lock_root = false});
  TestState loaded(kSpecs, world_rank(), world_size());
  expect_agreed_error<Error>([&] { io.load(root, loaded.snapshot()); });
}

}  // namespace
}  // namespace ckptio::test
