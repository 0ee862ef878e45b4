#include "synthetic_state.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "ckptio/shard.hpp"
#include "ckptio/state_dict.hpp"

namespace ckptio_bench {

namespace {
constexpr std::uint64_t kElementBytes = sizeof(float);
constexpr int kGroupCount = 3;
}  // namespace

std::uint64_t Workload::total_bytes() const {
  std::uint64_t total = 0;
  for (std::int64_t r : rows)
    total += static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(columns) * kElementBytes;
  return total;
}

const char* Workload::group_of(int tensor) const { return ckptio::kGroupNames[groups[tensor]]; }

Workload make_workload(std::uint64_t bytes, int tensors, std::int64_t columns, std::int64_t min_rows) {
  if (tensors < 1) throw std::invalid_argument("--tensors must be at least 1");
  if (columns < 1) throw std::invalid_argument("--columns must be at least 1");
  const std::uint64_t row_bytes = static_cast<std::uint64_t>(columns) * kElementBytes;
  if (bytes == 0 || bytes % row_bytes != 0) {
    throw std::invalid_argument("--bytes (" + std::to_string(bytes) +
                                ") must be a positive multiple of the row size (" + std::to_string(row_bytes) +
                                " bytes = --columns x 4)");
  }
  const auto total_rows = static_cast<std::int64_t>(bytes / row_bytes);
  Workload workload;
  workload.columns = columns;
  for (int t = 0; t < tensors; ++t) {
    workload.rows.push_back(row_block(total_rows, tensors, t).count);
    workload.groups.push_back(t % kGroupCount);
    workload.names.push_back("blocks." + std::to_string(t) + ".weight");
  }
  if (workload.rows.back() < min_rows) {
    throw std::invalid_argument("--bytes is too small: tensors of " + std::to_string(workload.rows.back()) +
                                " rows cannot be split into " + std::to_string(min_rows) + " row blocks");
  }
  return workload;
}

Workload make_llm_workload(std::uint64_t bytes) {
  constexpr int kLayers = 50;
  // Per layer 12 h^2 + 2 h elements in the model; four copies (model, 2 optimizer, ema).
  std::int64_t h = 8;
  while (4.0 * kLayers * (12.0 * (h + 8) * (h + 8) + 2.0 * (h + 8)) * kElementBytes <= static_cast<double>(bytes))
    h += 8;
  struct Param {
    const char* name;
    std::int64_t rows_per_h;  // 0: one row (a norm)
  };
  const Param params[] = {{"attn.qkv.weight", 3}, {"attn.proj.weight", 1}, {"mlp.fc1.weight", 4},
                          {"mlp.fc2.weight", 4},  {"norm1.weight", 0},     {"norm2.weight", 0}};
  Workload workload;
  workload.columns = h;
  auto add = [&](int group, const std::string& name, std::int64_t rows) {
    workload.rows.push_back(rows);
    workload.groups.push_back(group);
    workload.names.push_back(name);
  };
  for (int layer = 0; layer < kLayers; ++layer)
    for (const Param& p : params) {
      const std::string name = "blocks." + std::to_string(layer) + "." + p.name;
      const std::int64_t rows = p.rows_per_h ? p.rows_per_h * h : 1;
      add(0, name, rows);
      add(1, name + ".exp_avg", rows);
      add(1, name + ".exp_avg_sq", rows);
      add(2, name, rows);
    }
  return workload;
}

Workload make_moe_workload(int tensors) {
  if (tensors < 1) throw std::invalid_argument("--tensors must be at least 1");
  constexpr int kExperts = 64;
  const char* const matrices[] = {"w1", "w2", "w3"};
  Workload workload;
  workload.columns = 16;
  workload.parts = 1;
  auto add = [&](int group, const std::string& name, std::int64_t rows) {
    if (workload.tensor_count() == tensors) return;
    workload.rows.push_back(rows);
    workload.groups.push_back(group);
    workload.names.push_back(name);
  };
  for (std::int64_t p = 0; workload.tensor_count() < tensors; ++p) {
    const std::int64_t layer = p / (3 * kExperts), expert = p / 3 % kExperts;
    const std::string name = "layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(expert) + "." +
                             matrices[p % 3] + ".weight";
    const std::int64_t rows = std::int64_t{4} << ((p * 5 + layer) % 9);  // 4 .. 1,024 rows of 64 bytes
    add(0, name, rows);
    add(1, name + ".exp_avg", rows);
    add(1, name + ".exp_avg_sq", rows);
    add(2, name, rows);
  }
  return workload;
}

RowBlock row_block(std::int64_t rows, int parts, int part) {
  const std::int64_t base = rows / parts;
  const std::int64_t extra = rows % parts;
  const std::int64_t begin = part * base + std::min<std::int64_t>(part, extra);
  return RowBlock{begin, base + (part < extra ? 1 : 0)};
}

std::vector<LocalBlock> take_blocks(const Workload& workload, int parts, int rank, int world_size) {
  if (parts < 1 || parts > world_size) {
    throw std::invalid_argument("a layout of " + std::to_string(parts) + " row blocks needs 1.." +
                                std::to_string(world_size) + " blocks on " + std::to_string(world_size) + " ranks");
  }
  std::vector<LocalBlock> blocks;
  for (int t = 0; t < workload.tensor_count(); ++t) {
    for (int p = 0; p < parts; ++p) {
      if ((static_cast<std::int64_t>(t) * parts + p) % world_size != rank) continue;
      LocalBlock block;
      block.tensor = t;
      block.rows = row_block(workload.rows[t], parts, p);
      block.elements = static_cast<std::size_t>(block.rows.count * workload.columns);
      block.data = std::make_unique_for_overwrite<float[]>(block.elements);
      blocks.push_back(std::move(block));
    }
  }
  return blocks;
}

ckptio::Snapshot make_snapshot(const Workload& workload, std::vector<LocalBlock>& blocks, std::int64_t global_step) {
  ckptio::Snapshot snapshot;
  auto group = [&snapshot](const char* name) -> std::optional<ckptio::StateDict>& {
    const std::string_view n(name);
    return n == "model" ? snapshot.model : n == "optimizer" ? snapshot.optimizer : snapshot.ema;
  };
  for (int t = 0; t < workload.tensor_count(); ++t)
    if (auto& g = group(workload.group_of(t)); !g) g.emplace();
  for (LocalBlock& block : blocks) {
    const ckptio::Shape shape{workload.rows[block.tensor], workload.columns};
    group(workload.group_of(block.tensor))
        ->add(workload.name_of(block.tensor),
              ckptio::TensorShard::block(block.data.get(), ckptio::DType::F32, shape, {block.rows.begin, 0},
                                         {block.rows.count, workload.columns}));
  }
  snapshot.running.epoch = 0;
  snapshot.running.step = global_step;
  snapshot.running.global_step = global_step;
  return snapshot;
}

}  // namespace ckptio_bench
