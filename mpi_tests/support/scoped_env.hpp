// An environment variable set (or unset) for one scope and restored, to its old value or to
// unset, when the scope ends, also when a failed assertion or an exception leaves it early:
// a test must not leave its environment to the tests after it.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace ckptio::test {

class ScopedEnv {
 public:
  // Sets `name` to `value` (std::nullopt: unsets it) until destruction.
  ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    set(value);
  }
  // The same with a C string; nullptr unsets it.
  ScopedEnv(std::string name, const char* value)
      : ScopedEnv(std::move(name), value ? std::optional<std::string>(value) : std::nullopt) {}
  ~ScopedEnv() { apply(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  // Changes the value within the scope; the destructor still restores the original one.
  void set(const std::optional<std::string>& value) { apply(value); }

 private:
  void apply(const std::optional<std::string>& value) const {
    if (value)
      ::setenv(name_.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace ckptio::test
