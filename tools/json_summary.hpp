// ckptio tool: one-line summaries of JSON values too large to print whole (a sampler's
// permutation can hold millions of indices).
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace ckptio::tool {

// Compact JSON text, with invalid UTF-8 replaced rather than thrown on.
std::string compact_json(const nlohmann::json& value);

// `value` as compact JSON when that fits in max_chars. Otherwise a summary that keeps the
// shape visible: long arrays become `[N items]`, objects nested deeper than two levels
// become `{N keys}`, long strings are cut with "...", and a result still longer than
// max_chars is cut and ends in "...".
std::string summarize_json(const nlohmann::json& value, std::size_t max_chars);

}  // namespace ckptio::tool
