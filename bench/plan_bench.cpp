// Micro-benchmarks of the metadata work that precedes every save and load: describing a
// model of many tensors as a StateDict and looking tensors up in it. A large model has
// thousands of parameters and optimizer entries, and this cost is paid on every checkpoint.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ckptio/shard.hpp"
#include "ckptio/state_dict.hpp"

namespace {

// Framework-style names ("blocks.17.attn.qkv.weight"), as many as asked.
std::vector<std::string> parameter_names(std::int64_t count) {
  static const char* const kLeaves[] = {"attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                        "mlp.fc1.weight",  "mlp.fc1.bias",  "mlp.fc2.weight",   "mlp.fc2.bias",
                                        "norm1.weight",    "norm2.weight"};
  constexpr std::int64_t kLeafCount = sizeof(kLeaves) / sizeof(kLeaves[0]);
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    names.push_back("blocks." + std::to_string(i / kLeafCount) + "." + kLeaves[i % kLeafCount]);
  }
  return names;
}

// Rank 1 of 4's row block of a 4096 x 4096 F32 tensor: the memory is never touched.
ckptio::TensorShard row_block_shard(const float* data) {
  return ckptio::TensorShard::block(data, ckptio::DType::F32, {4096, 4096}, {1024, 0}, {1024, 4096});
}

ckptio::StateDict build_state_dict(const std::vector<std::string>& names, const float* data) {
  ckptio::StateDict dict;
  for (const std::string& name : names) dict.add(name, row_block_shard(data));
  return dict;
}

void BM_BuildStateDict(benchmark::State& state) {
  const std::vector<std::string> names = parameter_names(state.range(0));
  const float data = 0.0f;
  for (auto _ : state) {
    ckptio::StateDict dict = build_state_dict(names, &data);
    benchmark::DoNotOptimize(dict);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_BuildStateDict)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_FindEveryTensor(benchmark::State& state) {
  const std::vector<std::string> names = parameter_names(state.range(0));
  const float data = 0.0f;
  const ckptio::StateDict dict = build_state_dict(names, &data);
  for (auto _ : state) {
    std::uint64_t bytes = 0;
    for (const std::string& name : names) bytes += dict.find(name)->local_bytes();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_FindEveryTensor)->Arg(10000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
