// An outside program that uses the installed ckptio: saves a small snapshot with every kind
// of shard, loads it back into fresh buffers and checks every value. Exit 0 on success.
//
// usage: mpiexec -n N ckptio_consumer CHECKPOINT_ROOT
#include <mpi.h>

#include <ckptio/ckptio.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr std::int64_t kRows = 6;
constexpr std::int64_t kCols = 4;
constexpr std::int64_t kFlatElements = 10;

// The tensors of one rank, owned here because shards are only views.
struct Tensors {
  std::vector<float> embedding;        // [kRows, kCols], replicated: every rank holds all of it
  std::vector<double> projection;      // [kRows, kCols], split by rows (tensor parallelism)
  std::vector<std::int64_t> counters;  // [kFlatElements], flat range of this rank (ZeRO-style)
  std::vector<float> ema_embedding;    // [kRows, kCols], replicated
};

struct RowSplit {
  std::int64_t first_row;
  std::int64_t rows;
};

// Splits n items over size ranks as evenly as possible; some ranks may get none.
RowSplit split(std::int64_t n, int rank, int size) {
  const std::int64_t base = n / size;
  const std::int64_t extra = n % size;
  const std::int64_t first = rank * base + std::min<std::int64_t>(rank, extra);
  return {first, base + (rank < extra ? 1 : 0)};
}

float embedding_value(std::int64_t index) { return 0.5f * static_cast<float>(index) - 3.0f; }
double projection_value(std::int64_t index) { return 1.0 / static_cast<double>(index + 1); }
std::int64_t counter_value(std::int64_t index) { return 1000 * index + 7; }
float ema_value(std::int64_t index) { return embedding_value(index) * 0.9f; }

Tensors make_tensors(int rank, int size, bool filled) {
  const RowSplit rows = split(kRows, rank, size);
  const RowSplit flat = split(kFlatElements, rank, size);
  Tensors t;
  t.embedding.assign(kRows * kCols, 0.0f);
  t.projection.assign(rows.rows * kCols, 0.0);
  t.counters.assign(flat.rows, 0);
  t.ema_embedding.assign(kRows * kCols, 0.0f);
  if (!filled) return t;
  for (std::int64_t i = 0; i < kRows * kCols; ++i) {
    t.embedding[i] = embedding_value(i);
    t.ema_embedding[i] = ema_value(i);
  }
  for (std::int64_t i = 0; i < rows.rows * kCols; ++i) t.projection[i] = projection_value(rows.first_row * kCols + i);
  for (std::int64_t i = 0; i < flat.rows; ++i) t.counters[i] = counter_value(flat.first_row + i);
  return t;
}

ckptio::Snapshot make_snapshot(Tensors& t, int rank, int size) {
  const RowSplit rows = split(kRows, rank, size);
  const RowSplit flat = split(kFlatElements, rank, size);
  ckptio::StateDict model;
  model.add("embed.weight", ckptio::TensorShard::whole(t.embedding.data(), ckptio::DType::F32, {kRows, kCols}));
  model.add("proj.weight", ckptio::TensorShard::block(t.projection.data(), ckptio::DType::F64, {kRows, kCols},
                                                      {rows.first_row, 0}, {rows.rows, kCols}));
  ckptio::StateDict optimizer;
  optimizer.add("state.step_counts", ckptio::TensorShard::flat(t.counters.data(), ckptio::DType::I64, {kFlatElements},
                                                               flat.first_row, flat.first_row + flat.rows));
  ckptio::StateDict ema;
  ema.add("embed.weight", ckptio::TensorShard::whole(t.ema_embedding.data(), ckptio::DType::F32, {kRows, kCols}));

  ckptio::Snapshot snapshot;
  snapshot.model = std::move(model);
  snapshot.optimizer = std::move(optimizer);
  snapshot.ema = std::move(ema);
  snapshot.running.epoch = 2;
  snapshot.running.step = 3;
  snapshot.running.global_step = 11;
  snapshot.running.lr_scheduler = {{"last_lr", 0.25}, {"warmup_steps", 4}};
  snapshot.running.sampler = {{"seed", 42}, {"index", 17}};
  snapshot.running.extras = {{"note", "consumer"}};
  snapshot.rank_blob = {static_cast<std::uint8_t>(rank), 0xAB, 0xCD};
  return snapshot;
}

// Prints every mismatch (on the rank that sees it) and returns how many there were.
int check(const Tensors& loaded, const Tensors& expected, const ckptio::LoadResult& result, int rank) {
  int mismatches = 0;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::fprintf(stderr, "consumer: rank %d: %s\n", rank, what.c_str());
      ++mismatches;
    }
  };
  expect(loaded.embedding == expected.embedding, "model embed.weight differs after load");
  expect(loaded.projection == expected.projection, "model proj.weight block differs after load");
  expect(loaded.counters == expected.counters, "optimizer state.step_counts flat range differs after load");
  expect(loaded.ema_embedding == expected.ema_embedding, "ema embed.weight differs after load");
  expect(result.running.epoch == 2 && result.running.step == 3 && result.running.global_step == 11,
         "epoch/step/global_step differ after load");
  expect(result.running.lr_scheduler.value("last_lr", 0.0) == 0.25, "lr_scheduler JSON differs after load");
  expect(result.running.sampler.value("index", 0) == 17, "sampler JSON differs after load");
  expect(result.running.extras.value("note", std::string()) == "consumer", "extras JSON differs after load");
  const std::vector<std::uint8_t> blob = {static_cast<std::uint8_t>(rank), 0xAB, 0xCD};
  expect(result.rank_blob == blob, "rank blob differs after load");
  expect(std::filesystem::path(result.path).filename() == ckptio::checkpoint_file_name(2, 11),
         "loaded " + result.path + ", expected " + ckptio::checkpoint_file_name(2, 11));
  return mismatches;
}

int run(const std::filesystem::path& root, int rank, int size) {
  Tensors saved = make_tensors(rank, size, /*filled=*/true);
  Tensors loaded = make_tensors(rank, size, /*filled=*/false);
  int mismatches = 0;
  {
    ckptio::CheckpointIO io(MPI_COMM_WORLD, root);
    const std::filesystem::path written = io.save(make_snapshot(saved, rank, size));
    if (!std::filesystem::exists(written)) {
      std::fprintf(stderr, "consumer: rank %d: save returned %s, which does not exist\n", rank, written.c_str());
      ++mismatches;
    }
    const std::optional<ckptio::LoadResult> result = io.load_latest(make_snapshot(loaded, rank, size));
    if (!result) {
      std::fprintf(stderr, "consumer: rank %d: load_latest found no checkpoint after save\n", rank);
      ++mismatches;
    } else {
      mismatches += check(loaded, saved, *result, rank);
    }
  }
  int total = 0;
  MPI_Allreduce(&mismatches, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("consumer: ckptio %s, %d ranks: %s\n", ckptio::kVersion, size,
                total == 0 ? "saved, loaded and checked" : "MISMATCHES");
  }
  return total == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 2) {
    if (rank == 0) std::fprintf(stderr, "usage: %s CHECKPOINT_ROOT\n", argv[0]);
    MPI_Finalize();
    return 2;
  }
  int status = 1;
  try {
    status = run(argv[1], rank, size);
  } catch (const std::exception& error) {
    // The library raises the same error on every rank; aborting still guarantees that no
    // rank waits forever for one that left.
    std::fprintf(stderr, "consumer: rank %d: %s\n", rank, error.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return status;
}
