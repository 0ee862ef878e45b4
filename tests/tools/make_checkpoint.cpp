// Test helper for the `ckptio` tool tests: saves two checkpoints into ROOT (emptied first)
// through the public API, on however many ranks it runs (the tests use 2):
//   epoch0-global_step10.h5 and epoch1-global_step20.h5 (latest),
// each with tensors of several dtypes and layouts in all three groups, running state with a
// sampler too large to print whole, and per-rank blobs of (rank + 1) * 8 bytes.
// The tests check the tool's output against exactly these values.
//
// Usage: mpiexec -n 2 make_checkpoint ROOT
#include <mpi.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <vector>

#include "ckptio/ckptio.hpp"

namespace {

struct Layout {
  int rank = 0;
  int world_size = 1;
  // Rows [begin, end) of `rows` that this rank holds when rows are split into blocks.
  std::int64_t begin_of(std::int64_t rows) const { return rows * rank / world_size; }
  std::int64_t end_of(std::int64_t rows) const { return rows * (rank + 1) / world_size; }
};

// Buffers that the shards point into; they must outlive the save.
struct TensorData {
  std::vector<float> embed_rows;
  std::vector<float> embed_whole;
  std::vector<std::uint16_t> qkv_bias_bf16;
  std::vector<std::uint16_t> norm_scale_f16;
  std::int64_t num_batches = 0;
  std::vector<float> exp_avg_flat;
  std::vector<std::uint8_t> mask;
  std::vector<std::uint8_t> quant_scale_f8;
  std::vector<std::uint16_t> no_counts;
  std::int32_t optimizer_step = 0;
};

constexpr std::int64_t kEmbedRows = 8;
constexpr std::int64_t kEmbedCols = 4;
constexpr std::int64_t kEmbedElements = kEmbedRows * kEmbedCols;

TensorData make_data(const Layout& layout, std::int64_t global_step) {
  TensorData data;
  data.embed_whole.resize(kEmbedElements);
  std::iota(data.embed_whole.begin(), data.embed_whole.end(), static_cast<float>(global_step));
  const auto row_begin = layout.begin_of(kEmbedRows);
  const auto row_end = layout.end_of(kEmbedRows);
  data.embed_rows.assign(data.embed_whole.begin() + row_begin * kEmbedCols,
                         data.embed_whole.begin() + row_end * kEmbedCols);
  data.qkv_bias_bf16.assign(12, 0x3F80);          // BF16 1.0
  data.norm_scale_f16.assign(3 * 2 * 2, 0x3C00);  // F16 1.0
  data.num_batches = global_step * 16;
  const auto flat_begin = layout.begin_of(kEmbedElements);
  const auto flat_end = layout.end_of(kEmbedElements);
  data.exp_avg_flat.assign(data.embed_whole.begin() + flat_begin, data.embed_whole.begin() + flat_end);
  data.mask = {1, 0, 1, 1, 0};
  data.quant_scale_f8 = {0x38, 0x40, 0x48, 0x7E};  // F8_E4M3 1, 2, 4, 448
  data.optimizer_step = static_cast<std::int32_t>(global_step);
  return data;
}

ckptio::Snapshot make_snapshot(const Layout& layout, TensorData& data, std::int64_t epoch, std::int64_t global_step) {
  using ckptio::DType;
  using ckptio::TensorShard;
  const auto row_begin = layout.begin_of(kEmbedRows);
  const auto row_end = layout.end_of(kEmbedRows);

  ckptio::StateDict model;
  model.add("embed.weight", TensorShard::block(data.embed_rows.data(), DType::F32, {kEmbedRows, kEmbedCols},
                                               {row_begin, 0}, {row_end - row_begin, kEmbedCols}));
  model.add("blocks.0.attn.qkv.bias", TensorShard::whole(data.qkv_bias_bf16.data(), DType::BF16, {12}));
  model.add("blocks.0.norm.scale", TensorShard::whole(data.norm_scale_f16.data(), DType::F16, {3, 2, 2}));
  model.add("num_batches_tracked", TensorShard::whole(&data.num_batches, DType::I64, {}));

  ckptio::StateDict optimizer;
  optimizer.add("state.embed.weight.exp_avg",
                TensorShard::flat(data.exp_avg_flat.data(), DType::F32, {kEmbedRows, kEmbedCols},
                                  layout.begin_of(kEmbedElements), layout.end_of(kEmbedElements)));
  optimizer.add("state.step", TensorShard::whole(&data.optimizer_step, DType::I32, {}));
  optimizer.add("param_groups.0.mask", TensorShard::whole(data.mask.data(), DType::BOOL, {5}));

  ckptio::StateDict ema;
  ema.add("embed.weight", TensorShard::whole(data.embed_whole.data(), DType::F32, {kEmbedRows, kEmbedCols}));
  ema.add("quant.scale", TensorShard::whole(data.quant_scale_f8.data(), DType::F8_E4M3, {4}));
  ema.add("counts", TensorShard::whole(data.no_counts.data(), DType::U16, {0}));

  ckptio::Snapshot snapshot;
  snapshot.model = std::move(model);
  snapshot.optimizer = std::move(optimizer);
  snapshot.ema = std::move(ema);
  snapshot.running.epoch = epoch;
  snapshot.running.step = 3;
  snapshot.running.global_step = global_step;
  snapshot.running.lr_scheduler = {
      {"base_lrs", nlohmann::json::array({0.001})}, {"last_epoch", global_step}, {"_step_count", global_step + 1}};
  std::vector<std::int64_t> indices(1000);
  std::iota(indices.begin(), indices.end(), 0);
  snapshot.running.sampler = {{"seed", 42}, {"epoch", epoch}, {"indices", indices}};
  snapshot.running.extras = {{"note", "ckptio tool test"}, {"loss", 0.5}};
  snapshot.rank_blob.assign(static_cast<std::size_t>(layout.rank + 1) * 8, static_cast<std::uint8_t>(layout.rank));
  return snapshot;
}

void save_checkpoints(const std::filesystem::path& root, const Layout& layout) {
  ckptio::CheckpointIO io(MPI_COMM_WORLD, root);
  for (const auto& [epoch, global_step] : {std::pair<std::int64_t, std::int64_t>{0, 10}, {1, 20}}) {
    TensorData data = make_data(layout, global_step);
    io.save(make_snapshot(layout, data, epoch, global_step));
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Layout layout;
  MPI_Comm_rank(MPI_COMM_WORLD, &layout.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &layout.world_size);
  int exit_code = 0;
  if (argc != 2) {
    if (layout.rank == 0) std::cerr << "usage: make_checkpoint ROOT\n";
    exit_code = 2;
  } else {
    const std::filesystem::path root = argv[1];
    // Start from an empty root so that reruns of the tests see exactly two checkpoints.
    if (layout.rank == 0) std::filesystem::remove_all(root);
    MPI_Barrier(MPI_COMM_WORLD);
    try {
      save_checkpoints(root, layout);
    } catch (const std::exception& error) {
      std::cerr << "make_checkpoint: rank " << layout.rank << ": " << error.what() << '\n';
      exit_code = 1;
    }
  }
  MPI_Finalize();
  return exit_code;
}
