#include "ckptio/state_dict.hpp"

#include "ckptio/error.hpp"

namespace ckptio {

void StateDict::validate_name(std::string_view name) {
  if (name.empty()) throw UsageError("tensor name must not be empty");
  if (name.find('/') != std::string_view::npos)
    throw UsageError("tensor name '" + std::string(name) + "' must not contain '/'");
  if (name == "." || name == "..") throw UsageError("tensor name '" + std::string(name) + "' is not allowed");
  if (name.find('\0') != std::string_view::npos) throw UsageError("tensor name must not contain a NUL byte");
}

StateDict& StateDict::add(std::string name, TensorShard shard) {
  validate_name(name);
  if (index_.count(name)) throw UsageError("tensor '" + name + "' was added twice to the same StateDict");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(shard));
  return *this;
}

const TensorShard* StateDict::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

}  // namespace ckptio
