#include "support/test_state.hpp"

namespace ckptio::test {
namespace {

std::optional<StateDict>& group_of(Snapshot& s, const std::string& group) {
  if (group == "model") return s.model;
  if (group == "optimizer") return s.optimizer;
  return s.ema;
}

}  // namespace

TestState::TestState(const std::vector<TensorSpec>& specs, int rank, int ranks, std::optional<std::size_t> page_offset)
    : specs_(specs) {
  constexpr std::size_t kPage = 4096;
  for (const auto& spec : specs) {
    auto& dict = group_of(snapshot_, spec.group);
    if (!dict) dict.emplace();
    storage_.emplace_back();
    std::vector<std::uint8_t>& storage = storage_.back();
    TensorShard shard = make_shard(storage, spec.dtype, spec.shape, spec.layout, rank, ranks);
    if (page_offset) {
      storage.resize(storage.size() + 2 * kPage + *page_offset % kPage);  // never resized again
      const auto at = reinterpret_cast<std::uintptr_t>(storage.data());
      shard.data = reinterpret_cast<void*>((at + kPage - 1) / kPage * kPage + *page_offset % kPage);
    }
    dict->add(spec.name, std::move(shard));
  }
}

void TestState::fill() {
  for (const auto& spec : specs_)
    fill_pattern(*group_of(snapshot_, spec.group)->find(spec.name), seed_for(spec.group + "/" + spec.name));
}

void TestState::poison(std::uint8_t value) {
  for (const auto& spec : specs_) test::poison(*group_of(snapshot_, spec.group)->find(spec.name), value);
}

std::string TestState::check() const {
  for (const auto& spec : specs_) {
    const auto& dict = snapshot_.group(spec.group);
    const std::string problem = check_pattern(*dict->find(spec.name), seed_for(spec.group + "/" + spec.name));
    if (!problem.empty()) return spec.group + "/" + spec.name + ": " + problem;
  }
  return {};
}

}  // namespace ckptio::test
