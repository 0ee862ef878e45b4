// A Snapshot built from a list of tensor specs, with storage owned by the test, filled
// with a deterministic pattern and checkable after a load.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "support/test_util.hpp"

namespace ckptio::test {

struct TensorSpec {
  std::string group;  // model, optimizer, ema
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  Layout layout = Layout::Replicated;
};

class TestState {
 public:
  // This rank's shards of `specs` as rank `rank` of `ranks`. With `page_offset`, each
  // shard's memory starts that many bytes after a 4 KiB boundary (direct I/O tests: page-
  // aligned and unaligned memory); without, wherever the allocator puts it.
  TestState(const std::vector<TensorSpec>& specs, int rank, int ranks,
            std::optional<std::size_t> page_offset = std::nullopt);

  Snapshot& snapshot() { return snapshot_; }
  const Snapshot& snapshot() const { return snapshot_; }
  void fill();
  void poison(std::uint8_t value = 0xA5);
  // "" when every tensor holds the pattern, else "<group>/<name>: <problem>" of the first bad one.
  std::string check() const;

 private:
  std::vector<TensorSpec> specs_;
  std::deque<std::vector<std::uint8_t>> storage_;
  Snapshot snapshot_;
};

}  // namespace ckptio::test
