// Files and folders that may be hostile: a FIFO, device or symlink where a file is read, a
// malformed `latest`, files named like checkpoints that are none, export targets that must
// not be replaced. Nothing here may block: a FIFO without a writer would block an open()
// without O_NONBLOCK forever (ctest's timeout would catch that as a failure).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "core/regular_file.hpp"
#include "formats/byte_source.hpp"
#include "formats/safetensors_file.hpp"
#include "io/export_target.hpp"
#include "io/fs_util.hpp"
#include "io/retention.hpp"

namespace ckptio::detail {
namespace {

namespace fs = std::filesystem;

class HostileFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ckptio-hostile-files-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path fifo(const std::string& name) {
    const fs::path p = dir_ / name;
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
    return p;
  }
  fs::path file(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  // A copy of the HDF5 signature is all that root scans look at.
  fs::path hdf5_like(const std::string& name) { return file(name, std::string("\x89HDF\r\n\x1a\n", 8) + "rest"); }
  fs::path dir_;
};

template <class E, class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<other exception> ") + e.what();
  }
  return "<no error>";
}

TEST_F(HostileFiles, FifosAreRefusedWithoutBlocking) {
  const fs::path p = fifo("pipe");
  EXPECT_EQ(error_of<IoError>([&] { open_regular_file(p, "checkpoint"); }),
            "checkpoint " + p.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { read_small_file(p, 100, "lock file"); }),
            "lock file " + p.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { require_regular_file(p, "checkpoint"); }),
            "checkpoint " + p.string() + " is a FIFO, not a regular file");
  EXPECT_FALSE(has_hdf5_signature(p));
  EXPECT_EQ(error_of<IoError>([&] { formats::FileSource source(p.string()); }),
            "file " + p.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { SafetensorsFile file(p); }),
            "safetensors file " + p.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { open_regular_file(dir_, "checkpoint"); }),
            "checkpoint " + dir_.string() + " is a folder, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { open_regular_file("/dev/null", "checkpoint"); }),
            "checkpoint /dev/null is a character device, not a regular file");
}

TEST_F(HostileFiles, SymlinksAreRefusedWhereTheyAreNotFollowed) {
  const fs::path target = file("target", "x");
  fs::create_symlink(target, dir_ / "link");
  EXPECT_EQ(error_of<IoError>([&] { read_small_file(dir_ / "link", 100, "lock file"); }),
            "lock file " + (dir_ / "link").string() + " is a symbolic link, which ckptio does not follow here");
  auto followed = open_regular_file_if_exists(dir_ / "link", "file");  // where links may be followed
  ASSERT_TRUE(followed);
  EXPECT_EQ(read_regular_file(*followed, dir_ / "link", 10), "x");
  EXPECT_FALSE(open_regular_file_if_exists(dir_ / "missing", "file"));
}

TEST_F(HostileFiles, MalformedLatestNamesTheProblem) {
  const fs::path latest = dir_ / "latest";
  auto latest_error = [&](const std::string& content) {
    fs::remove(latest);
    file("latest", content);
    return error_of<FormatError>([&] { read_latest(dir_); });
  };
  const std::string head = latest.string() + " does not name a checkpoint file of its root (";
  const std::string tail = "; expected a name like epoch1-global_step20.h5 and a newline)";
  EXPECT_EQ(latest_error(""), head + "it is empty" + tail);
  EXPECT_EQ(latest_error(std::string("\0x\n", 3)), head + "it holds '\\x00x\\n'" + tail);
  EXPECT_EQ(latest_error("../epoch1-global_step20.h5\n"), head + "it holds '../epoch1-global_step20.h5\\n'" + tail);
  EXPECT_EQ(latest_error("/abs/epoch1-global_step20.h5\n"), head + "it holds '/abs/epoch1-global_step20.h5\\n'" + tail);
  EXPECT_EQ(latest_error("epoch1-global_step20.h5\nepoch0-global_step10.h5\n"),
            head + "it holds 'epoch1-global_step20.h5\\nepoch0-global_step10.h5\\n'" + tail);
  fs::remove(latest);
  EXPECT_EQ(read_latest(dir_), std::nullopt);
  fifo("latest");
  EXPECT_EQ(error_of<FormatError>([&] { read_latest(dir_); }),
            latest.string() + " is a FIFO, not the regular file that names the latest checkpoint");
  fs::remove(latest);
  fs::create_symlink(file("elsewhere", "epoch1-global_step20.h5\n"), latest);
  EXPECT_EQ(error_of<FormatError>([&] { read_latest(dir_); }),
            latest.string() + " is a symbolic link, not the regular file that names the latest checkpoint");
}

TEST_F(HostileFiles, OnlyRealContainersAreCheckpointsOfARoot) {
  hdf5_like("epoch0-global_step10.h5");
  hdf5_like("epoch0-global_step20.h5");
  file("epoch0-global_step30.h5", "a text file named like a checkpoint\n");
  fifo("epoch0-global_step40.h5");
  fs::create_directory(dir_ / "epoch0-global_step50.h5");
  fs::create_symlink(dir_ / "epoch0-global_step20.h5", dir_ / "epoch0-global_step60.h5");
  file("latest", "epoch0-global_step20.h5\n");
  EXPECT_EQ(committed_checkpoints(dir_),
            (std::vector<std::string>{"epoch0-global_step10.h5", "epoch0-global_step20.h5"}));
  EXPECT_EQ(root_entry_problem(dir_, "epoch0-global_step30.h5"), "it is not an HDF5 file");
  EXPECT_EQ(root_entry_problem(dir_, "epoch0-global_step40.h5"), "it is a FIFO, not a regular file");
  EXPECT_EQ(root_entry_problem(dir_, "epoch0-global_step50.h5"), "it is a folder, not a regular file");
  EXPECT_EQ(root_entry_problem(dir_, "epoch0-global_step60.h5").rfind("it is a symbolic link", 0), 0u);
  EXPECT_EQ(root_entry_problem(dir_, "epoch0-global_step70.h5"), "it does not exist");
  // Retention counts only the two real ones: keep_last = 2 prunes nothing (a fake newer
  // "checkpoint" used to push real ones out).
  EXPECT_TRUE(checkpoints_to_prune(dir_, 2, "epoch0-global_step20.h5").empty());
  EXPECT_EQ(checkpoints_to_prune(dir_, 1, "epoch0-global_step20.h5"),
            (std::vector<fs::path>{dir_ / "epoch0-global_step10.h5"}));
  // ls lists only them.
  const auto listed = list_checkpoints(dir_);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_TRUE(listed[1].is_latest);
}

TEST_F(HostileFiles, LoadOrderFallsBackFromAMalformedLatest) {
  hdf5_like("epoch0-global_step10.h5");
  hdf5_like("epoch1-global_step20.h5");
  const std::vector<std::string> newest_first{"epoch1-global_step20.h5", "epoch0-global_step10.h5"};
  for (const std::string content :
       {std::string(), std::string("garbage"), std::string("../x.h5\n"), std::string("/etc/epoch1-global_step20.h5\n"),
        std::string("epoch1-global_step20.h5\nepoch0-global_step10.h5\n"), std::string("epoch9-global_step90.h5\n")}) {
    fs::remove(dir_ / "latest");
    file("latest", content);
    EXPECT_EQ(load_order(dir_), newest_first) << content;
  }
  fs::remove(dir_ / "latest");
  file("latest", "epoch0-global_step10.h5\n");
  EXPECT_EQ(load_order(dir_), (std::vector<std::string>{"epoch0-global_step10.h5"}));
  // With nothing to fall back to, the problem is the error.
  fs::remove(dir_ / "epoch0-global_step10.h5");
  fs::remove(dir_ / "epoch1-global_step20.h5");
  EXPECT_EQ(error_of<IoError>([&] { load_order(dir_); }),
            (dir_ / "latest").string() + " names epoch0-global_step10.h5, but it does not exist");
  fs::remove(dir_ / "latest");
  file("latest", "x");
  EXPECT_EQ(error_of<FormatError>([&] { load_order(dir_); }).find("does not name a checkpoint file"),
            (dir_ / "latest").string().size() + 1);
}

TEST_F(HostileFiles, ResolvingThroughARootRefusesSymlinks) {
  const fs::path outside = dir_ / "outside";
  fs::create_directories(outside);
  const fs::path root = dir_ / "root";
  fs::create_directories(root);
  const fs::path real = outside / "real.h5";
  std::ofstream(real, std::ios::binary) << std::string("\x89HDF\r\n\x1a\n", 8);
  fs::create_symlink(real, root / "epoch1-global_step20.h5");
  std::ofstream(root / "latest") << "epoch1-global_step20.h5\n";
  EXPECT_EQ(error_of<FormatError>([&] {
              resolve_checkpoint_path(root);
            }).rfind((root / "latest").string() + " names epoch1-global_step20.h5, but it is a symbolic link", 0),
            0u);
  EXPECT_EQ(error_of<FormatError>([&] { resolve_load_path(root, "epoch1-global_step20.h5"); })
                .rfind("checkpoint " + (root / "epoch1-global_step20.h5").string() +
                           " cannot be loaded: it is a symbolic link",
                       0),
            0u);
  // A path given as it is stays the user's choice.
  EXPECT_EQ(resolve_checkpoint_path(root / "epoch1-global_step20.h5"), root / "epoch1-global_step20.h5");
  fs::remove(root / "epoch1-global_step20.h5");
  fs::create_directory(root / "epoch1-global_step20.h5");
  EXPECT_EQ(error_of<FormatError>([&] { resolve_checkpoint_path(root); }),
            (root / "latest").string() + " names epoch1-global_step20.h5, but it is a folder, not a regular file");
  EXPECT_EQ(error_of<IoError>([&] { resolve_checkpoint_path(root / "epoch1-global_step20.h5"); }),
            "checkpoint " + (root / "epoch1-global_step20.h5").string() + " is a folder, not a container file");
}

TEST_F(HostileFiles, ExportReplacesOnlyEarlierExports) {
  const fs::path ckpt = hdf5_like("epoch1-global_step20.h5");
  std::string safetensors(8, '\0');
  safetensors[0] = 8;
  safetensors += "{}      ";
  const fs::path earlier = file("model.safetensors", safetensors);
  EXPECT_EQ(export_output_problem(earlier, false), "");
  EXPECT_EQ(export_output_problem(dir_ / "new.safetensors", false), "");
  EXPECT_EQ(export_output_problem(file("notes.txt", "precious\n"), false),
            "it exists and is not a safetensors file (export replaces only what an earlier export wrote)");
  EXPECT_EQ(export_output_problem(fifo("pipe.safetensors"), false), "it is a FIFO, not a regular file");
  EXPECT_EQ(export_output_problem(dir_ / "latest", false).rfind("the name belongs to a checkpoint root's own files", 0),
            0u);
  EXPECT_EQ(export_output_problem(dir_ / "epoch0-global_step10.h5", false)
                .rfind("the name belongs to a checkpoint root's own files", 0),
            0u);
  EXPECT_EQ(export_output_problem(hdf5_like("c.safetensors"), false),
            "it is an HDF5 file (a checkpoint?), not an earlier export");
  EXPECT_EQ(export_output_problem(file("m.safetensors.index.json", "{\"weight_map\":{}}"), true), "");
  EXPECT_EQ(export_output_problem(file("x.safetensors.index.json", "not json"), true),
            "it exists and is not a JSON index (export replaces only what an earlier export wrote)");
  fs::create_symlink(earlier, dir_ / "link.safetensors");
  EXPECT_EQ(export_output_problem(dir_ / "link.safetensors", false), "it is a symbolic link");
  EXPECT_EQ(error_of<UsageError>([&] { check_export_outputs(ckpt, {ckpt}, std::nullopt); }),
            "export: will not write " + ckpt.string() + ": it is the checkpoint being exported");
  EXPECT_EQ(error_of<UsageError>([&] {
              check_export_outputs(ckpt, {earlier, dir_ / "notes.txt"}, std::nullopt);
            }),
            "export: will not write " + (dir_ / "notes.txt").string() +
                ": it exists and is not a safetensors file (export replaces only what an earlier export wrote)");
  EXPECT_NO_THROW(check_export_outputs(ckpt, {earlier}, dir_ / "m.safetensors.index.json"));
}

}  // namespace
}  // namespace ckptio::detail
