// ckptio: an ordered map from tensor name to the rank's shard of that tensor.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ckptio/shard.hpp"

namespace ckptio {

// Ordered name -> shard. Names are the framework's names ("blocks.0.attn.qkv.weight"); a
// name must be non-empty, must not contain '/', and must not be "." or "..".
class StateDict {
 public:
  using Entry = std::pair<std::string, TensorShard>;

  // Adds a tensor; throws UsageError for an invalid or duplicate name.
  StateDict& add(std::string name, TensorShard shard);

  const TensorShard* find(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  const std::vector<Entry>& entries() const { return entries_; }

  // Throws UsageError when `name` cannot be a tensor name.
  static void validate_name(std::string_view name);

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace ckptio
