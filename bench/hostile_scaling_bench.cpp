// Work that grows with the size of untrusted input must grow as n log n, not n^2: a
// safetensors header of 60,000 tensors took over 30 s (duplicate keys checked through
// nlohmann's callback parser), verify of a tensor of 200,000 pieces over 30 s (coverage
// checked pair by pair). Each benchmark runs at 10^4 and 10^5 entries and reports the fitted
// complexity; the CTest entry bench.hostile_scaling runs them at 10^5 under a time limit.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/coverage.hpp"
#include "core/piece_math.hpp"
#include "core/untrusted_json.hpp"
#include "formats/hf_layout.hpp"
#include "formats/safetensors_header.hpp"
#include "h5/index_codec.hpp"

namespace {

using ckptio::Block;

// A valid safetensors file prefix (header only) of n one-element F32 tensors.
std::string safetensors_header(std::int64_t n) {
  std::string json = "{";
  for (std::int64_t i = 0; i < n; ++i) {
    json += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
            std::to_string(4 * i) + "," + std::to_string(4 * i + 4) + "]}";
  }
  json += "}";
  std::string out(8, '\0');
  for (int b = 0; b < 8; ++b) out[b] = static_cast<char>((json.size() >> (8 * b)) & 0xff);
  return out + json;
}

void BM_SafetensorsHeader(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const std::string bytes = safetensors_header(n);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (auto _ : state) {
    auto header = ckptio::detail::parse_safetensors_header("bench.safetensors", p, bytes.size(),
                                                           bytes.size() + static_cast<std::uint64_t>(4 * n));
    benchmark::DoNotOptimize(header);
  }
  state.SetComplexityN(n);
}
BENCHMARK(BM_SafetensorsHeader)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oNLogN);

// A Hugging Face index naming n tensors in n / 100 shards.
void BM_HfIndex(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::string json = "{\"metadata\":{\"total_size\":1},\"weight_map\":{";
  for (std::int64_t i = 0; i < n; ++i)
    json += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":\"model-" + std::to_string(i / 100) + ".safetensors\"";
  json += "}}";
  for (auto _ : state) {
    auto index = ckptio::detail::parse_hf_index("bench.json", json);
    benchmark::DoNotOptimize(index);
  }
  state.SetComplexityN(n);
}
BENCHMARK(BM_HfIndex)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oNLogN);

// n flat ranges of a [n, 7] tensor split at uneven places (each range becomes up to 3
// blocks), as ZeRO-style shards of many ranks would store it.
std::vector<Block> flat_tiling(std::int64_t n, const ckptio::Shape& shape) {
  const std::int64_t total = shape[0] * shape[1];
  std::vector<Block> blocks;
  for (std::int64_t p = 0; p < n; ++p)
    for (auto& b : ckptio::detail::flat_range_to_blocks(shape, total * p / n, total * (p + 1) / n))
      blocks.push_back(std::move(b));
  return blocks;
}

void BM_PieceCoverage(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const ckptio::Shape shape{n, 7};
  const std::vector<Block> blocks = flat_tiling(n, shape);
  const Block whole{{0, 0}, shape};
  for (auto _ : state) {
    const auto coverage = ckptio::detail::piece_coverage(whole, blocks);
    if (!coverage.exact) state.SkipWithError("a tiling was not found exact");
  }
  state.SetComplexityN(n);
}
BENCHMARK(BM_PieceCoverage)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oNLogN);

// verify's metadata work for one tensor of n pieces: decoding the index, then the coverage.
void BM_IndexWithManyPieces(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::string pieces;
  for (std::int64_t p = 0; p < n; ++p)
    pieces += (p ? "," : "") + std::string("{\"offset\":[") + std::to_string(p) + ",0],\"count\":[1,4],\"writer\":0," +
              "\"xxh3\":\"0123456789abcdef\"}";
  const std::string json =
      "{\"world_size\":1,\"checksum_chunk_bytes\":1048576,\"tensors\":[{\"group\":\"model\","
      "\"name\":\"w\",\"dtype\":\"F32\",\"shape\":[" +
      std::to_string(n) + ",4],\"pieces\":[" + pieces +
      "]}],\"running_state\":{\"bytes\":0,\"xxh3\":\"0123456789abcdef\"},\"rank_blobs\":[{"
      "\"bytes\":0,\"xxh3\":\"0123456789abcdef\"}]}";
  for (auto _ : state) {
    const auto index = ckptio::detail::h5::decode_index(json, "bench.h5");
    std::vector<Block> blocks;
    for (const auto& p : index.tensors[0].pieces) blocks.push_back(p.block);
    const auto coverage = ckptio::detail::piece_coverage(Block{{0, 0}, index.tensors[0].shape}, blocks);
    if (!coverage.exact) state.SkipWithError("the pieces were not found to cover the tensor");
  }
  state.SetComplexityN(n);
}
BENCHMARK(BM_IndexWithManyPieces)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oNLogN);

// The index of a mixture-of-experts state: n packed tensors of 4 pieces each (4 ranks),
// encoded by a save and decoded by every loading rank. What is left per tensor once HDF5
// no longer creates or opens a dataset per tensor (docs/PERFORMANCE.md, "Many tensors").
ckptio::detail::h5::ContainerIndex packed_index(std::int64_t n) {
  ckptio::detail::h5::ContainerIndex index;
  index.world_size = 4;
  index.chunk_bytes = 1 << 20;
  index.rank_blobs.resize(4);
  for (std::int64_t t = 0; t < n; ++t) {
    ckptio::detail::h5::IndexTensor tensor{
        "model",
        "layers." + std::to_string(t / 768) + ".experts." + std::to_string(t % 256) + ".w" + std::to_string(t % 3),
        ckptio::DType::F32,
        {64, 16},
        {},
        static_cast<std::uint64_t>(t) * 4096};
    for (int r = 0; r < 4; ++r) tensor.pieces.push_back({Block{{16 * r, 0}, {16, 16}}, r, 0x0123456789abcdefull, {}});
    index.tensors.push_back(std::move(tensor));
  }
  return index;
}

void BM_EncodePackedIndex(benchmark::State& state) {
  const auto index = packed_index(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(ckptio::detail::h5::encode_index(index));
  state.SetComplexityN(state.range(0));
}
BENCHMARK(BM_EncodePackedIndex)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oN);

void BM_DecodePackedIndex(benchmark::State& state) {
  const std::string json = ckptio::detail::h5::encode_index(packed_index(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(ckptio::detail::h5::decode_index(json, "bench.h5"));
  state.SetComplexityN(state.range(0));
  state.counters["json_bytes"] = static_cast<double>(json.size());
}
BENCHMARK(BM_DecodePackedIndex)
    ->RangeMultiplier(10)
    ->Range(10'000, 100'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oN);

}  // namespace

BENCHMARK_MAIN();
