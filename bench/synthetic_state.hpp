// The benchmark's synthetic training state: a few large two-dimensional F32 tensors, spread
// over the model / optimizer / ema groups, whose rows are split into blocks across ranks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/snapshot.hpp"

namespace ckptio_bench {

// The global shapes of the synthetic tensors: every tensor has `columns` F32 columns and
// its own number of rows, a group and a name.
struct Workload {
  std::int64_t columns = 0;
  std::vector<std::int64_t> rows;  // one entry per tensor
  std::vector<int> groups;         // index into ckptio::kGroupNames, per tensor
  std::vector<std::string> names;  // per tensor
  // Row blocks per tensor in the saved layout (take_blocks' parts); 0: one per rank.
  int parts = 0;

  int tensor_count() const { return static_cast<int>(rows.size()); }
  std::uint64_t total_bytes() const;
  const char* group_of(int tensor) const;
  const std::string& name_of(int tensor) const { return names[tensor]; }
};

// `tensors` tensors whose rows are shared out as evenly as possible so that together they
// hold exactly `bytes`; groups taken in turn (model, optimizer, ema) so that every group is
// exercised. Throws std::invalid_argument unless `bytes` is a whole number of rows of
// `columns` F32 values and every tensor gets at least `min_rows` rows (one per rank that
// holds a block).
Workload make_workload(std::uint64_t bytes, int tensors, std::int64_t columns, std::int64_t min_rows);

// An LLM-like state of about `bytes`: 50 transformer layers of 6 parameters each (qkv
// 3h x h, proj h x h, fc1 4h x h, fc2 4h x h stored as rows of h, two norms 1 x h) in the
// model group, two optimizer tensors per parameter (exp_avg, exp_avg_sq) and an EMA copy:
// 1,200 tensors of mixed sizes. h (the columns) is chosen to fit `bytes`, a multiple of 8.
Workload make_llm_workload(std::uint64_t bytes);

// A mixture-of-experts-like state of `tensors` tensors: per layer 64 experts of 3 matrices
// (w1, w2, w3) of 16 F32 columns and 4 to 1,024 rows (256 B to 64 KiB, spread evenly over
// the powers of two), each with its two optimizer tensors and an EMA copy. Every tensor is
// held whole by one rank, in turn (expert parallelism: parts = 1).
Workload make_moe_workload(int tensors);

struct RowBlock {
  std::int64_t begin = 0;
  std::int64_t count = 0;
};

// Block `part` of `parts` contiguous row blocks of near-equal size covering `rows` rows; the
// first `rows % parts` blocks get one extra row.
RowBlock row_block(std::int64_t rows, int parts, int part);

// One row block of one tensor that this rank holds, with the memory behind it.
struct LocalBlock {
  int tensor = 0;
  RowBlock rows;
  std::size_t elements = 0;
  std::unique_ptr<float[]> data;  // allocated, not initialised
};

// The blocks this rank holds when every tensor is split into `parts` row blocks and all
// blocks, tensor after tensor, are dealt to the ranks round robin: block p of tensor t goes
// to rank (t * parts + p) % world_size. With parts == world_size rank r holds block r of
// every tensor (the usual tensor-parallel layout). With fewer parts than ranks a rank holds
// at most one block per tensor, and the idle rank changes from tensor to tensor so that the
// reading work stays balanced. Requires 1 <= parts <= world_size (a StateDict holds one
// piece per tensor).
std::vector<LocalBlock> take_blocks(const Workload& workload, int parts, int rank, int world_size);

// A snapshot whose groups view `blocks` (every group of the workload is present on every
// rank, empty where this rank holds nothing of it). The blocks must outlive the snapshot.
ckptio::Snapshot make_snapshot(const Workload& workload, std::vector<LocalBlock>& blocks, std::int64_t global_step);

}  // namespace ckptio_bench
