// Interop test helper: saves one checkpoint whose every tensor has known values, through
// the public API on however many ranks it runs (the test uses 2), and has rank 0 write the
// expected contents as JSON for test_h5py_reads_container.py to compare with what h5py
// reads. Covered: every dtype as a block-split 2-D tensor (model/dtypes.*), as a
// flat-range-split tensor (optimizer/flat.*), replicated (ema/dtypes.*) and as a scalar
// (model/scalar.*); 3-D tensors split in blocks along an inner dimension; zero-element
// tensors; running state; per-rank blobs.
//
// Usage: mpiexec -n 2 write_known ROOT EXPECTED_JSON   (ROOT is emptied first)
#include <mpi.h>

#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "known_values.hpp"

namespace {

using ckptio::DType;
using ckptio::Shape;
using ckptio::TensorShard;
using ckptio::interop::KnownValues;
using nlohmann::json;

struct Ranks {
  int rank = 0;
  int world_size = 1;
  // [begin, end) of `extent` that this rank holds when it is split evenly-ish.
  std::int64_t begin_of(std::int64_t extent) const { return extent * rank / world_size; }
  std::int64_t end_of(std::int64_t extent) const { return extent * (rank + 1) / world_size; }
};

std::int64_t element_count(const Shape& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 2);
  for (auto byte : bytes) {
    text += kDigits[byte >> 4];
    text += kDigits[byte & 0xF];
  }
  return text;
}

// Builds the snapshot: keeps every rank-local buffer alive and records what the file must hold.
class KnownCheckpoint {
 public:
  explicit KnownCheckpoint(const Ranks& ranks) : ranks_(ranks) {
    snapshot_.model.emplace();
    snapshot_.optimizer.emplace();
    snapshot_.ema.emplace();
  }

  // Every rank passes the whole tensor.
  void add_whole(const char* group, const std::string& name, DType dtype, const Shape& shape) {
    const KnownValues& known = record(group, name, dtype, shape);
    dict(group).add(name, TensorShard::whole(keep(known.bytes), dtype, shape));
  }

  // Split along `axis` into one block per rank.
  void add_blocks(const char* group, const std::string& name, DType dtype, const Shape& shape, std::size_t axis) {
    const KnownValues& known = record(group, name, dtype, shape);
    const std::int64_t begin = ranks_.begin_of(shape[axis]);
    const std::int64_t end = ranks_.end_of(shape[axis]);
    const std::size_t element_size = ckptio::dtype_size(dtype);
    const Shape outer(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(axis));
    const Shape inner(shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, shape.end());
    const auto outer_count = element_count(outer);
    const auto inner_bytes = static_cast<std::size_t>(element_count(inner)) * element_size;
    std::vector<std::uint8_t> local;
    for (std::int64_t o = 0; o < outer_count; ++o) {
      const auto slab = static_cast<std::size_t>(o * shape[axis] + begin) * inner_bytes;
      const auto slab_end = static_cast<std::size_t>(o * shape[axis] + end) * inner_bytes;
      local.insert(local.end(), known.bytes.begin() + static_cast<std::ptrdiff_t>(slab),
                   known.bytes.begin() + static_cast<std::ptrdiff_t>(slab_end));
    }
    std::vector<std::int64_t> offset(shape.size(), 0);
    std::vector<std::int64_t> count = shape;
    offset[axis] = begin;
    count[axis] = end - begin;
    dict(group).add(name, TensorShard::block(keep(std::move(local)), dtype, shape, offset, count));
  }

  // Split as flat ranges of the row-major tensor, one per rank.
  void add_flat(const char* group, const std::string& name, DType dtype, const Shape& shape) {
    const KnownValues& known = record(group, name, dtype, shape);
    const std::int64_t begin = ranks_.begin_of(element_count(shape));
    const std::int64_t end = ranks_.end_of(element_count(shape));
    const std::size_t element_size = ckptio::dtype_size(dtype);
    std::vector<std::uint8_t> local(known.bytes.begin() + static_cast<std::ptrdiff_t>(begin * element_size),
                                    known.bytes.begin() + static_cast<std::ptrdiff_t>(end * element_size));
    dict(group).add(name, TensorShard::flat(keep(std::move(local)), dtype, shape, begin, end));
  }

  ckptio::Snapshot& snapshot() { return snapshot_; }
  json& expected_tensors() { return expected_tensors_; }

 private:
  ckptio::StateDict& dict(const std::string& group) {
    if (group == "model") return *snapshot_.model;
    if (group == "optimizer") return *snapshot_.optimizer;
    return *snapshot_.ema;
  }

  const KnownValues& record(const char* group, const std::string& name, DType dtype, const Shape& shape) {
    known_.push_back(ckptio::interop::make_known_values(dtype, element_count(shape), known_.size() + 1));
    const KnownValues& known = known_.back();
    expected_tensors_.push_back({{"group", group},
                                 {"name", name},
                                 {"dtype", std::string(ckptio::dtype_name(dtype))},
                                 {"shape", shape},
                                 {"hex", to_hex(known.bytes)},
                                 {"values", known.values}});
    return known;
  }

  void* keep(std::vector<std::uint8_t> bytes) {
    buffers_.push_back(std::move(bytes));
    return buffers_.back().data();
  }

  Ranks ranks_;
  ckptio::Snapshot snapshot_;
  std::deque<KnownValues> known_;  // deque: references stay valid as it grows
  std::deque<std::vector<std::uint8_t>> buffers_;
  json expected_tensors_ = json::array();
};

ckptio::RunningState known_running_state() {
  ckptio::RunningState running;
  running.epoch = 3;
  running.step = 7;
  running.global_step = 1234;
  running.lr_scheduler = {{"name", "cosine"}, {"base_lrs", json::array({0.0003, 0.001})}, {"last_epoch", 1234}};
  std::vector<std::int64_t> indices(5000);
  std::iota(indices.rbegin(), indices.rend(), 0);
  running.sampler = {{"seed", 1}, {"epoch", 3}, {"indices", indices}};
  running.extras = {{"unicode", "na\u00efve \u2713"},
                    {"nested", {{"list", json::array({1, 2, json::object({{"none", nullptr}})})}}},
                    {"largest_u64", std::uint64_t{18446744073709551615ULL}},
                    {"smallest_i64", std::int64_t{-9223372036854775807LL - 1}},
                    {"pi", 3.141592653589793}};
  return running;
}

std::vector<std::uint8_t> known_rank_blob(int rank) {
  std::vector<std::uint8_t> blob(static_cast<std::size_t>(4 + 3 * rank));
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<std::uint8_t>(rank * 16 + i);
  return blob;
}

void write_known(const std::filesystem::path& root, const std::filesystem::path& expected_path, const Ranks& ranks) {
  KnownCheckpoint checkpoint(ranks);
  for (DType dtype : ckptio::kAllDTypes) {
    const std::string name(ckptio::dtype_name(dtype));
    checkpoint.add_blocks("model", "dtypes." + name, dtype, {5, 6}, 0);
    checkpoint.add_whole("model", "scalar." + name, dtype, {});
    checkpoint.add_flat("optimizer", "flat." + name, dtype, {3, 7});
    checkpoint.add_whole("ema", "dtypes." + name, dtype, {9});
  }
  checkpoint.add_blocks("model", "blocks.0.attn.qkv.weight", DType::F32, {4, 3, 10}, 1);
  checkpoint.add_blocks("model", "blocks.0.mlp.fc1.weight", DType::BF16, {2, 6, 4}, 2);
  checkpoint.add_whole("model", "empty.F32", DType::F32, {0, 4});
  checkpoint.add_whole("optimizer", "empty.U8", DType::U8, {0});

  ckptio::Snapshot& snapshot = checkpoint.snapshot();
  snapshot.running = known_running_state();
  snapshot.rank_blob = known_rank_blob(ranks.rank);

  ckptio::CheckpointIO io(MPI_COMM_WORLD, root);
  const std::filesystem::path saved = io.save(snapshot);

  if (ranks.rank != 0) return;
  json rank_blobs = json::array();
  for (int rank = 0; rank < ranks.world_size; ++rank) rank_blobs.push_back(known_rank_blob(rank));
  const ckptio::RunningState& running = snapshot.running;
  const json expected = {
      {"container", saved.filename().string()},
      {"world_size", ranks.world_size},
      {"running",
       {{"epoch", running.epoch},
        {"step", running.step},
        {"global_step", running.global_step},
        {"lr_scheduler", running.lr_scheduler},
        {"sampler", running.sampler},
        {"extras", running.extras}}},
      {"rank_blobs", rank_blobs},
      {"tensors", checkpoint.expected_tensors()},
  };
  std::ofstream(expected_path) << expected.dump(1) << '\n';
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Ranks ranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &ranks.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks.world_size);
  int exit_code = 0;
  if (argc != 3) {
    if (ranks.rank == 0) std::cerr << "usage: write_known ROOT EXPECTED_JSON\n";
    exit_code = 2;
  } else {
    const std::filesystem::path root = argv[1];
    if (ranks.rank == 0) std::filesystem::remove_all(root);
    MPI_Barrier(MPI_COMM_WORLD);
    try {
      write_known(root, argv[2], ranks);
    } catch (const std::exception& error) {
      std::cerr << "write_known: rank " << ranks.rank << ": " << error.what() << '\n';
      exit_code = 1;
    }
  }
  MPI_Finalize();
  return exit_code;
}
