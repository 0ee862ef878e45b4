// safetensors export and load_checkpoint on real ranks: the export's bytes do not depend on
// the number of ranks; loads of single files, sharded folders, index files and a local
// Hugging Face cache give every rank its piece; traversal and escaping symlinks are refused.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

#include "formats/float_convert.hpp"
#include "support/agreement.hpp"
#include "support/scoped_env.hpp"
#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

std::vector<TensorSpec> export_specs(Layout layout) {
  std::vector<TensorSpec> specs;
  for (DType d : kAllDTypes) specs.push_back({"model", "t." + std::string(dtype_name(d)), d, {7, 5}, layout});
  specs.push_back({"model", "big.weight", DType::F32, {64, 48}, layout});
  specs.push_back({"model", "scalar", DType::I64, {}, Layout::Replicated});
  specs.push_back({"model", "empty", DType::F16, {0, 3}, Layout::Replicated});
  return specs;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Saves export_specs() (split over the ranks) into `root`; returns the container.
fs::path save_state(const fs::path& root) {
  TestState state(export_specs(Layout::Dim0Blocks), world_rank(), world_size());
  state.fill();
  state.snapshot().running.epoch = 3;
  state.snapshot().running.global_step = 70;
  CheckpointIO io(MPI_COMM_WORLD, root);
  return io.save(state.snapshot());
}

// Every rank's own verdict, agreed: true only when all ranks say so.
bool all_ranks(bool mine) {
  int in = mine ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return out == 1;
}

TEST(SafetensorsExport, BytesDoNotDependOnTheNumberOfRanks) {
  SharedTempDir dir;
  const fs::path ckpt = save_state(dir / "root");
  ExportOptions options;
  options.chunk_bytes = 1000;  // split big.weight into pieces spread over the ranks
  for (const bool sharded : {false, true}) {
    options.max_shard_size = sharded ? 6000 : 0;
    options.dtype = sharded ? std::optional<DType>(DType::BF16) : std::nullopt;
    const std::string tag = sharded ? "sharded" : "single";
    const auto all =
        export_safetensors(MPI_COMM_WORLD, dir / "root", "model", dir / (tag + "-all.safetensors"), options);
    EXPECT_EQ(all.tensors, export_specs(Layout::Replicated).size());
    EXPECT_EQ(all.files.size(), sharded ? 2u : 1u);
    EXPECT_EQ(all.index.has_value(), sharded);
    if (world_rank() == 0) {
      const auto one = export_safetensors(MPI_COMM_SELF, ckpt, "model", dir / (tag + "-one.safetensors"), options);
      ASSERT_EQ(one.files.size(), all.files.size());
      for (std::size_t i = 0; i < one.files.size(); ++i)
        EXPECT_TRUE(read_file(one.files[i]) == read_file(all.files[i])) << all.files[i];
      if (sharded) {
        const std::string index = read_file(*all.index);
        EXPECT_NE(index.find("\"total_size\": " + std::to_string(all.tensor_bytes)), std::string::npos) << index;
        EXPECT_NE(index.find("\"big.weight\": \"sharded-all-00001-of-00002.safetensors\""), std::string::npos) << index;
        EXPECT_EQ(read_file(*one.index).size(), index.size());
      }
      for (const auto& f : all.files) EXPECT_FALSE(fs::exists(f.string() + ".partial"));
    }
  }
}

TEST(SafetensorsLoad, EveryRankGetsItsPieceOfASingleFileAndOfShards) {
  SharedTempDir dir;
  save_state(dir / "root");
  export_safetensors(MPI_COMM_WORLD, dir / "root", "model", dir / "m.safetensors");
  ExportOptions sharded;
  sharded.max_shard_size = 3000;
  if (world_rank() == 0) fs::create_directories(dir / "shards");
  MPI_Barrier(MPI_COMM_WORLD);
  export_safetensors(MPI_COMM_WORLD, dir / "root", "model", dir / "shards" / "model.safetensors", sharded);
  const std::string sources[] = {(dir / "m.safetensors").string(), (dir / "shards").string(),
                                 (dir / "shards" / "model.safetensors.index.json").string(), (dir / "root").string()};
  for (const auto& source : sources) {
    for (Layout layout : {Layout::Replicated, Layout::Flat, Layout::SkewedFlat, Layout::LastDimBlocks}) {
      TestState target(export_specs(layout), world_rank(), world_size());
      target.poison();
      const auto r = load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, source);
      EXPECT_TRUE(r.keys.clean());
      EXPECT_TRUE(all_ranks(target.check().empty())) << source << " " << layout_name(layout) << ": " << target.check();
    }
  }
}

TEST(SafetensorsLoad, KeysShapesAndDtypes) {
  SharedTempDir dir;
  save_state(dir / "root");
  const fs::path file = dir / "m.safetensors";
  export_safetensors(MPI_COMM_WORLD, dir / "root", "model", file);
  auto specs = export_specs(Layout::Flat);
  specs.erase(specs.begin());  // t.F64 stored but not asked for
  specs.push_back({"model", "extra", DType::F32, {2}, Layout::Replicated});
  TestState target(specs, world_rank(), world_size());
  const std::string message = expect_agreed_error<MismatchError>(
      [&] { load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, file.string()); });
  EXPECT_EQ(message,
            "[ckptio] [rank 0] load_checkpoint: " + file.string() +
                ": state dict does not match (strict load); missing keys (1): extra; unexpected keys (1): t.F64");
  LoadOptions lenient;
  lenient.strict = false;
  const auto r = load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, file.string(), lenient);
  // A safetensors file has no groups: the keys' group is empty.
  EXPECT_EQ(r.keys.missing, (std::vector<KeyReport::Key>{{"", "extra"}}));
  EXPECT_EQ(r.keys.unexpected, (std::vector<KeyReport::Key>{{"", "t.F64"}}));

  std::vector<float> wrong(6);
  StateDict shape_sd;
  shape_sd.add("big.weight", TensorShard::whole(wrong.data(), DType::F32, {2, 3}));
  lenient.strict = false;
  const std::string shape_error =
      expect_agreed_error<MismatchError>([&] { load_checkpoint(MPI_COMM_WORLD, shape_sd, file.string(), lenient); });
  EXPECT_EQ(shape_error, "[ckptio] [rank 0] load_checkpoint " + file.string() + ": " + file.string() +
                             ": tensor 'big.weight' on rank 0: requested with global shape [2, 3] but stored with "
                             "[64, 48]");

  // dtype: refused without convert_dtype, rounded to nearest even with it.
  std::vector<std::uint16_t> bf16(64 * 48);
  StateDict dtype_sd;
  dtype_sd.add("big.weight", TensorShard::whole(bf16.data(), DType::BF16, {64, 48}));
  expect_agreed_error<MismatchError>([&] { load_checkpoint(MPI_COMM_WORLD, dtype_sd, file.string(), lenient); });
  lenient.convert_dtype = true;
  load_checkpoint(MPI_COMM_WORLD, dtype_sd, file.string(), lenient);
  std::vector<float> f32(64 * 48);
  StateDict f32_sd;
  f32_sd.add("big.weight", TensorShard::whole(f32.data(), DType::F32, {64, 48}));
  load_checkpoint(MPI_COMM_WORLD, f32_sd, file.string(), lenient);
  bool same = true;
  for (std::size_t i = 0; i < f32.size(); ++i) same = same && bf16[i] == detail::f32_to_bf16(f32[i]);
  EXPECT_TRUE(same);
}

// The layout huggingface_hub leaves in its cache: snapshots/<commit>/<file> are relative
// symlinks into ../../blobs/<hash>, refs/main holds the commit.
TEST(SafetensorsLoad, FromAFakeHuggingFaceCache) {
  SharedTempDir dir;
  save_state(dir / "root");
  ExportOptions sharded;
  sharded.max_shard_size = 3000;
  if (world_rank() == 0) fs::create_directories(dir / "export");
  MPI_Barrier(MPI_COMM_WORLD);
  const auto exported =
      export_safetensors(MPI_COMM_WORLD, dir / "root", "model", dir / "export" / "model.safetensors", sharded);
  const fs::path cache = dir / "hub";
  const fs::path repo = cache / "models--org--tiny";
  const std::string commit = "c0ffee0000000000000000000000000000000001";
  if (world_rank() == 0) {
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "snapshots" / commit);
    std::ofstream(repo / "refs" / "main") << commit;
    std::vector<fs::path> files = exported.files;
    files.push_back(*exported.index);
    int blob = 0;
    for (const auto& f : files) {
      const std::string hash = "blob" + std::to_string(blob++);
      fs::copy_file(f, repo / "blobs" / hash);
      fs::create_symlink("../../blobs/" + hash, repo / "snapshots" / commit / f.filename());
    }
    // A second revision whose index escapes its folder, and a third with an escaping symlink.
    fs::create_directories(repo / "snapshots" / "bad1");
    std::ofstream(repo / "snapshots" / "bad1" / "model.safetensors.index.json")
        << R"({"metadata":{"total_size":8},"weight_map":{"scalar":"../../blobs/blob0"}})";
    fs::create_directories(repo / "snapshots" / "bad2");
    fs::copy_file(exported.files[0], dir / "outside.safetensors");
    fs::create_symlink("../../../../outside.safetensors", repo / "snapshots" / "bad2" / "model.safetensors");
    std::ofstream(repo / "refs" / "bad1") << "bad1bad1bad1bad1bad1bad1bad1bad1bad1bad1";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ScopedEnv hub_cache("HF_HUB_CACHE", cache.string());

  TestState target(export_specs(Layout::Flat), world_rank(), world_size());
  target.poison();
  const auto r = load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, "org/tiny");
  EXPECT_EQ(r.files.size(), 2u);  // the two shards, read through their blobs
  for (const auto& f : r.files) EXPECT_EQ(f.parent_path(), fs::canonical(repo / "blobs"));
  EXPECT_TRUE(all_ranks(target.check().empty())) << target.check();
  // The snapshot folder given by its path: a plain folder of symlinks.
  target.poison();
  load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, (repo / "snapshots" / commit).string());
  EXPECT_TRUE(all_ranks(target.check().empty())) << target.check();

  const std::string missing =
      expect_agreed_error<IoError>([&] { load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, "org/absent"); });
  EXPECT_EQ(missing,
            "[ckptio] [rank 0] load_checkpoint org/absent: Hugging Face repo 'org/absent' is not in the "
            "local cache " +
                cache.string() +
                " (offline: nothing is downloaded; fetch it first, e.g. with `huggingface-cli download "
                "org/absent`)");
  if (world_rank() == 0) {
    fs::rename(repo / "snapshots" / "bad1", repo / "snapshots" / "bad1bad1bad1bad1bad1bad1bad1bad1bad1bad1");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  LoadOptions options;
  options.revision = "bad1";
  const std::string traversal = expect_agreed_error<FormatError>(
      [&] { load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, "org/tiny", options); });
  EXPECT_NE(traversal.find("weight_map entry 'scalar': file name '../../blobs/blob0' would leave its folder"),
            std::string::npos)
      << traversal;
  if (world_rank() == 0) {
    fs::remove_all(repo / "snapshots" / commit);
    fs::rename(repo / "snapshots" / "bad2", repo / "snapshots" / commit);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string escape =
      expect_agreed_error<FormatError>([&] { load_checkpoint(MPI_COMM_WORLD, *target.snapshot().model, "org/tiny"); });
  EXPECT_NE(escape.find("is a symlink to " + fs::canonical(dir / "outside.safetensors").string() + ", outside " +
                        fs::canonical(repo).string()),
            std::string::npos)
      << escape;
}

TEST(SafetensorsSaveExport, WrittenBeforeTheCommitAndPrunedWithTheContainer) {
  SharedTempDir dir;
  TestState state(export_specs(Layout::Flat), world_rank(), world_size());
  state.fill();
  CheckpointOptions options;
  options.keep_last = 1;
  options.export_safetensors = "model";
  options.export_dtype = DType::BF16;
  {
    CheckpointIO io(MPI_COMM_WORLD, dir.path(), options);
    for (std::int64_t g : {10, 20}) {
      state.snapshot().running.global_step = g;
      io.save(state.snapshot());
    }
  }
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step10.h5"));
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step10.model.safetensors"));
  const fs::path exported = dir / "epoch0-global_step20.model.safetensors";
  ASSERT_TRUE(fs::exists(exported));
  ExportOptions same;
  same.dtype = DType::BF16;
  export_safetensors(MPI_COMM_WORLD, dir.path(), "model", dir / "again.safetensors", same);
  if (world_rank() == 0) {
    EXPECT_TRUE(read_file(exported) == read_file(dir / "again.safetensors"));
    const auto info = inspect_safetensors(exported);
    EXPECT_EQ(info.metadata.at("global_step"), "20");
    EXPECT_EQ(info.metadata.at("ckptio.source"), "epoch0-global_step20.h5");
  }

  // A failing export fails the save: nothing is committed, nothing is left behind.
  options.export_safetensors = "ema";
  CheckpointIO io(MPI_COMM_WORLD, dir.path(), options);
  state.snapshot().running.global_step = 30;
  const std::string message = expect_agreed_error<UsageError>([&] { io.save(state.snapshot()); });
  EXPECT_EQ(message, "[ckptio] [rank 0] export: " + (dir / "epoch0-global_step30.h5.partial").string() +
                         " has no tensors in group 'ema'");
  EXPECT_EQ(io.latest(), dir / "epoch0-global_step20.h5");
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step30.h5.partial"));
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step30.h5"));
  EXPECT_FALSE(fs::exists(dir / "epoch0-global_step30.ema.safetensors"));
}

}  // namespace
}  // namespace ckptio::test
