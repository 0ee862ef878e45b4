// Hostile containers and roots against the collective API: deep JSON in a newest checkpoint,
// a malformed `latest`, HDF5 external links and external storage (one rank opening a linked
// file would start a collective call alone), a duplicated piece hiding a hole, files named
// like checkpoints that are none, a parallel export in which one rank's read fails. Every
// case must end in the same error on every rank or in the documented fallback; a watchdog
// turns a hang into a failure.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/checksum.hpp"
#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"
#include "support/watchdog.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<TensorSpec> kSpecs = {{"model", "w", DType::F32, {8, 4}, Layout::Dim0Blocks},
                                        {"optimizer", "m", DType::F32, {32}, Layout::Flat}};

// Saves global steps 10 and 20 into `root` (collective).
void save_two(const fs::path& root, TestState& state) {
  CheckpointIO io(MPI_COMM_WORLD, root, {.lock_root = false});
  for (std::int64_t step : {10, 20}) {
    state.snapshot().running.global_step = step;
    io.save(state.snapshot());
  }
}

// ---- editing containers (rank 0, serial HDF5) ----

std::string read_dataset_bytes(hid_t file, const char* path) {
  const hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  std::string bytes(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)), '\0');
  H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  H5Sclose(space);
  H5Dclose(d);
  return bytes;
}

void write_dataset_bytes(hid_t file, const char* path, const std::string& bytes) {
  H5Ldelete(file, path, H5P_DEFAULT);
  const hsize_t n = bytes.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t d = H5Dcreate2(file, path, H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  H5Dclose(d);
  H5Sclose(space);
}

void write_index_checksum(hid_t file, const std::string& index_text) {
  const std::string hex = detail::to_hex64(detail::xxh3_64(index_text.data(), index_text.size()));
  H5Adelete(file, "index_xxh3");
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, hex.size());
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(file, "index_xxh3", type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, type, hex.data());
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

// Applies `edit` to the file; its index may be changed through the json, and stays
// consistent with its checksum attribute, so that the reader gets past that check.
template <class Edit>
void edit_container(const fs::path& path, Edit&& edit) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0) << path;
  json index = json::parse(read_dataset_bytes(file, "/_ckptio/index"));
  edit(file, index);
  const std::string text = index.dump();
  write_dataset_bytes(file, "/_ckptio/index", text);
  write_index_checksum(file, text);
  H5Fclose(file);
}

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// ---- the cases ----

TEST(HostileInput, LoadLatestSkipsANewestCheckpointThatFailsToParse) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  save_two(dir.path(), state);
  const fs::path newest = dir / "epoch0-global_step20.h5";
  if (world_rank() == 0) {
    // A running state nested 100,000 deep, with checksums that match: it used to crash
    // every rank with SIGSEGV inside the JSON library.
    edit_container(newest, [](hid_t file, json& index) {
      const std::string deep = R"({"epoch":0,"step":0,"global_step":20,"extras":)" + nested(100'000) + "}";
      write_dataset_bytes(file, "/_ckptio/running_state", deep);
      index["running_state"] = {{"bytes", deep.size()},
                                {"xxh3", detail::to_hex64(detail::xxh3_64(deep.data(), deep.size()))}};
    });
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
  TestState loaded(kSpecs, world_rank(), world_size());
  loaded.poison();
  const auto result = io.load_latest(loaded.snapshot());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->running.global_step, 10);
  EXPECT_EQ(loaded.check(), "");
  // Named explicitly, it is an agreed FormatError.
  const auto msg = expect_agreed_error<FormatError>([&] { io.load(newest, loaded.snapshot()); });
  EXPECT_NE(msg.find(newest.string() + ": invalid running state: nested more than 128 levels deep"), std::string::npos)
      << msg;
}

TEST(HostileInput, LoadLatestFallsBackFromAMalformedLatestLoudly) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  save_two(dir.path(), state);
  const fs::path latest = dir / "latest";
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
  const std::vector<std::string> contents = {"",
                                             std::string("\0garbage", 8),
                                             "../epoch0-global_step20.h5\n",
                                             (dir / "epoch0-global_step20.h5").string() + "\n",
                                             "epoch0-global_step20.h5\nepoch0-global_step10.h5\n",
                                             "epoch0-global_step99.h5\n",
                                             "<fifo>",
                                             "<symlink>"};
  for (const auto& content : contents) {
    if (world_rank() == 0) {
      fs::remove(latest);
      if (content == "<fifo>") {
        ASSERT_EQ(::mkfifo(latest.c_str(), 0600), 0);
      } else if (content == "<symlink>") {
        std::ofstream(dir / "elsewhere") << "epoch0-global_step10.h5\n";
        fs::create_symlink(dir / "elsewhere", latest);
      } else {
        std::ofstream(latest, std::ios::binary) << content;
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    TestState loaded(kSpecs, world_rank(), world_size());
    loaded.poison();
    const auto result = io.load_latest(loaded.snapshot());
    ASSERT_TRUE(result) << content;
    EXPECT_EQ(result->running.global_step, 20) << content;  // the newest committed checkpoint
    EXPECT_EQ(loaded.check(), "") << content;
  }
}

TEST(HostileInput, ExternalLinksAndStorageAreRefusedOnEveryRank) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  // "solo" is loaded by rank 0 only: an external link there made H5Dopen start a collective
  // MPI_Comm_dup on rank 0 alone, and the job hung.
  std::vector<float> solo(16, 1.5f);
  Snapshot snapshot;
  snapshot.model.emplace();
  if (world_rank() == 0) snapshot.model->add("solo", TensorShard::whole(solo.data(), DType::F32, {16}));
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
    io.save(snapshot);
  }
  const fs::path ckpt = dir / "epoch0-global_step0.h5";
  const fs::path linked = dir / "linked.h5", stored = dir / "stored.h5", secret = dir / "secret.bin";
  if (world_rank() == 0) {
    const hid_t other = H5Fcreate((dir / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t n = 16;
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    H5Dclose(H5Dcreate2(other, "w", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(other);
    fs::copy_file(ckpt, linked);
    edit_container(linked, [&](hid_t file, json&) {
      H5Ldelete(file, "/model/solo", H5P_DEFAULT);
      H5Lcreate_external((dir / "other.h5").c_str(), "w", file, "/model/solo", H5P_DEFAULT, H5P_DEFAULT);
    });
    // External storage over a file that holds exactly the saved bytes: the checksum matches,
    // so only the layout check stands between a load and a file outside the container.
    std::ofstream(secret, std::ios::binary).write(reinterpret_cast<const char*>(solo.data()), 64);
    fs::copy_file(ckpt, stored);
    edit_container(stored, [&](hid_t file, json&) {
      H5Ldelete(file, "/model/solo", H5P_DEFAULT);
      const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_external(dcpl, secret.c_str(), 0, 64);
      H5Dclose(H5Dcreate2(file, "/model/solo", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
      H5Pclose(dcpl);
    });
    H5Sclose(space);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
  std::vector<float> out(16, 0.0f);
  Snapshot targets;
  targets.model.emplace();
  if (world_rank() == 0) targets.model->add("solo", TensorShard::whole(out.data(), DType::F32, {16}));
  auto msg = expect_agreed_error<FormatError>([&] { io.load(linked, targets); });
  EXPECT_NE(msg.find(linked.string() + ": /model/solo is an external link (to another file), which ckptio never "
                                       "writes and does not follow"),
            std::string::npos)
      << msg;
  msg = expect_agreed_error<FormatError>([&] { io.load(stored, targets); });
  EXPECT_NE(msg.find(stored.string() + ": dataset /model/solo keeps its data in external files"), std::string::npos)
      << msg;
  EXPECT_EQ(out, std::vector<float>(16, 0.0f));
  // verify says the same about both, on every rank.
  for (const auto& file : {linked, stored}) {
    const auto report = verify_container(MPI_COMM_WORLD, file);
    ASSERT_EQ(report.problems.size(), 1u) << file;
    EXPECT_NE(report.problems[0].find("/model/solo"), std::string::npos) << report.problems[0];
  }
}

TEST(HostileInput, ADuplicatedPieceCannotHideAHole) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
    io.save(state.snapshot());
  }
  const fs::path ckpt = dir / "epoch0-global_step0.h5";
  if (world_rank() == 0) {
    // model/w [8, 4]: rows 0..4 listed twice, with a valid checksum; rows 4..8 in no piece.
    // The volumes still add up to the tensor's: the load used to leave rows 4..8 as they were.
    const hid_t file = H5Fopen(ckpt.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    std::vector<float> w(32);
    const hid_t d = H5Dopen2(file, "/model/w", H5P_DEFAULT);
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w.data());
    H5Dclose(d);
    H5Fclose(file);
    const std::string sum = detail::to_hex64(detail::xxh3_64(w.data(), 16 * sizeof(float)));
    edit_container(ckpt, [&](hid_t, json& index) {
      for (auto& t : index["tensors"])
        if (t["group"] == "model" && t["name"] == "w") {
          const json piece = {{"offset", {0, 0}}, {"count", {4, 4}}, {"writer", 0}, {"xxh3", sum}};
          t["pieces"] = json::array({piece, piece});
        }
    });
  }
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
  TestState loaded({kSpecs[0]}, world_rank(), world_size());
  loaded.poison();
  if (world_size() == 1) {
    const auto msg = expect_agreed_error<FormatError>([&] { io.load(ckpt, loaded.snapshot()); });
    EXPECT_NE(msg.find(ckpt.string() + ": tensor model/w: the stored pieces do not cover the requested block [0, 0]+"
                                       "[8, 4] (they cover 16 of its 32 elements)"),
              std::string::npos)
        << msg;
  } else {
    // Some rank asks for rows in the hole.
    const auto msg = expect_agreed_error<FormatError>([&] { io.load(ckpt, loaded.snapshot()); });
    EXPECT_NE(msg.find("the stored pieces do not cover the requested block"), std::string::npos) << msg;
  }
  const auto report = verify_container(MPI_COMM_WORLD, ckpt);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0], ckpt.string() + ": tensor model/w is incomplete: its pieces cover 16 of 32 elements");
}

TEST(HostileInput, FilesNamedLikeCheckpointsAreNeverCounted) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  const fs::path root = dir / "root";
  CheckpointIO io(MPI_COMM_WORLD, root, {.keep_last = 2, .lock_root = false});
  for (std::int64_t step : {10, 20}) {
    state.snapshot().running.global_step = step;
    io.save(state.snapshot());
  }
  if (world_rank() == 0) {
    // Newer-looking names that are no checkpoints: an export written under such a name, a
    // symlink to a container outside the root. Counted, they pushed real checkpoints out.
    std::ofstream(root / "epoch9-global_step90.h5") << "not a container\n";
    fs::copy_file(root / "epoch0-global_step20.h5", dir / "outside.h5");
    fs::create_symlink(dir / "outside.h5", root / "epoch9-global_step95.h5");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  state.snapshot().running.global_step = 30;
  io.save(state.snapshot());
  if (world_rank() == 0) {
    EXPECT_FALSE(fs::exists(root / "epoch0-global_step10.h5"));
    EXPECT_TRUE(fs::exists(root / "epoch0-global_step20.h5"));
    EXPECT_TRUE(fs::exists(root / "epoch0-global_step30.h5"));
    EXPECT_TRUE(fs::exists(root / "epoch9-global_step90.h5"));  // not ours to delete either
    EXPECT_TRUE(fs::exists(dir / "outside.h5"));
    const auto listed = list_checkpoints(root);
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].name, "epoch0-global_step20.h5");
  }
  // Loading by the symlink's name through the root is refused; load_latest never sees it.
  TestState loaded(kSpecs, world_rank(), world_size());
  const auto msg = expect_agreed_error<FormatError>([&] { io.load("epoch9-global_step95.h5", loaded.snapshot()); });
  EXPECT_NE(msg.find("cannot be loaded: it is a symbolic link"), std::string::npos) << msg;
  const auto result = io.load_latest(loaded.snapshot());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->running.global_step, 30);
}

TEST(HostileInput, ExportAgreesWhenOneRanksReadFailsAndKeepsTheEarlierExport) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  const std::vector<TensorSpec> specs = {{"ema", "big", DType::F32, {64, 1024}, Layout::Dim0Blocks}};
  TestState state(specs, world_rank(), world_size());
  state.fill();
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
    io.save(state.snapshot());
  }
  const fs::path ckpt = dir / "epoch0-global_step0.h5";
  const fs::path flipped = dir / "flipped.h5";
  const fs::path out = dir / "ema.safetensors";
  ExportOptions options;
  options.chunk_bytes = 16 << 10;  // many chunks, spread over the ranks
  export_safetensors(MPI_COMM_WORLD, ckpt, "ema", out, options);
  std::string good;
  if (world_rank() == 0) {
    std::ifstream in(out, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
    fs::copy_file(ckpt, flipped);
    const hid_t file = H5Fopen(flipped.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(file, "/ema/big", H5P_DEFAULT);
    const haddr_t at = H5Dget_offset(d) + 200'000;  // read by one rank only
    H5Dclose(d);
    H5Fclose(file);
    std::fstream s(flipped, std::ios::in | std::ios::out | std::ios::binary);
    s.seekp(static_cast<std::streamoff>(at));
    s.put('\x5a');
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto msg =
      expect_agreed_error<IntegrityError>([&] { export_safetensors(MPI_COMM_WORLD, flipped, "ema", out, options); });
  EXPECT_NE(msg.find(flipped.string() + ": tensor ema/big, piece "), std::string::npos) << msg;
  EXPECT_NE(msg.find("data does not match its checksum"), std::string::npos) << msg;
  if (world_rank() == 0) {
    std::ifstream in(out, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), good) << "the earlier export was replaced";
    EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  }
  // load_checkpoint of a container verifies as well.
  std::vector<float> buffer(64 * 1024);
  StateDict dict;
  dict.add("big", TensorShard::whole(buffer.data(), DType::F32, {64, 1024}));
  const auto load_msg = expect_agreed_error<IntegrityError>(
      [&] { load_checkpoint(MPI_COMM_WORLD, dict, flipped.string(), {.group = "ema"}); });
  EXPECT_NE(load_msg.find("data does not match its checksum"), std::string::npos) << load_msg;
}

TEST(HostileInput, LockFilesThatAreNoLocks) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  const fs::path root = dir / "root";
  const fs::path lock = root / ".ckptio.lock";
  if (world_rank() == 0) {
    fs::create_directories(root);
    ASSERT_EQ(::mkfifo(lock.c_str(), 0600), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // A FIFO: refused at once, naming it (opening it blocked forever).
  auto msg = expect_agreed_error<LockedError>([&] { CheckpointIO io(MPI_COMM_WORLD, root); });
  EXPECT_NE(
      msg.find("has a lock file that cannot be read (lock file " + lock.string() + " is a FIFO, not a regular file)"),
      std::string::npos)
      << msg;
  // JSON of the wrong shape (it failed with a JSON type error that named no file): damage,
  // taken over as a lock whose holder died while writing it.
  if (world_rank() == 0) {
    fs::remove(lock);
    std::ofstream(lock) << R"({"host": 7, "pid": "twelve"})";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_NO_THROW(CheckpointIO io(MPI_COMM_WORLD, root));
}

TEST(HostileInput, AFolderThatRefusesFilesIsReportedWithItsErrno) {
  Watchdog watchdog(::testing::UnitTest::GetInstance()->current_test_info()->name());
  SharedTempDir dir;
  const fs::path root = dir / "immutable";
  int immutable = 0;
  if (world_rank() == 0) {
    fs::create_directories(root);
    // chattr +i: even root may not create files there (needs root and a file system with
    // the attribute, as ext4 and xfs have).
    immutable = std::system(("chattr +i '" + root.string() + "' 2>/dev/null").c_str()) == 0 ? 1 : 0;
  }
  MPI_Bcast(&immutable, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!immutable) GTEST_SKIP() << "chattr +i is not available here";
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  // MPI-IO reported this as "MPI_ERR_OTHER: known error not in list".
  const auto msg = expect_agreed_error<IoError>([&] {
    CheckpointIO io(MPI_COMM_WORLD, root, {.lock_root = false});
    io.save(state.snapshot());
  });
  EXPECT_NE(
      msg.find("cannot create " + (root / "epoch0-global_step0.h5.partial").string() + ": Operation not permitted"),
      std::string::npos)
      << msg;
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), {.lock_root = false});
    io.save(state.snapshot());
  }
  const auto export_msg = expect_agreed_error<IoError>(
      [&] { export_safetensors(MPI_COMM_WORLD, dir / "epoch0-global_step0.h5", "model", root / "m.safetensors"); });
  EXPECT_NE(export_msg.find("cannot create " + (root / "m.safetensors.partial").string() + ": Operation not permitted"),
            std::string::npos)
      << export_msg;
  if (world_rank() == 0) EXPECT_EQ(std::system(("chattr -i '" + root.string() + "'").c_str()), 0);
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace ckptio::test
