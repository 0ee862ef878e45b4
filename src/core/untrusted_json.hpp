// Parsing JSON that comes from a file (a container's index and running state, a
// safetensors header, a Hugging Face index, a lock file): bounded nesting, optionally no
// duplicate keys, and no recursion over the input. nlohmann's own recursive copies,
// comparisons and dump() are then safe to use on the result, since its depth is bounded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ckptio::detail {

// Deepest nesting of arrays and objects accepted in JSON read from a file or saved in a
// running state ([[1]] is 2 levels). serde_json, which the safetensors reference reader
// uses, stops at 128; running states of real jobs nest a few levels.
inline constexpr std::size_t kMaxJsonDepth = 128;

struct UntrustedJsonOptions {
  std::size_t max_depth = kMaxJsonDepth;
  // Refuse an object that names a key twice (nlohmann keeps the last one silently).
  bool reject_duplicate_keys = true;
};

struct UntrustedJsonResult {
  enum class Problem { None, Syntax, TooDeep, DuplicateKey };
  nlohmann::json value;  // null unless problem is None
  Problem problem = Problem::None;
  std::string syntax_error;  // Syntax: nlohmann's description
  std::string key;           // DuplicateKey: the key given twice
  std::size_t depth = 0;     // DuplicateKey: nesting of the object that repeats it (1: the top level)
  // "not valid JSON: ...", "nested more than 128 levels deep" or "key 'k' appears twice in
  // one object" (the key quoted safely); empty for None.
  std::string describe(const UntrustedJsonOptions& options = {}) const;
};

// Parses `text` and reports the first problem instead of throwing.
UntrustedJsonResult try_parse_untrusted_json(std::string_view text, const UntrustedJsonOptions& options = {});

// Parses `text`. Throws FormatError("<what>: <problem>") when it is not valid JSON, nests
// deeper than max_depth or repeats a key. Works without recursion and in time linear in the
// text (n log n with the duplicate check).
nlohmann::json parse_untrusted_json(std::string_view text, const std::string& what,
                                    const UntrustedJsonOptions& options = {});

// How deeply `value` nests (a scalar: 0, [] or {}: 1), found without recursion; stops
// counting once past `limit` and returns limit + 1.
std::size_t json_depth(const nlohmann::json& value, std::size_t limit = kMaxJsonDepth);

}  // namespace ckptio::detail
