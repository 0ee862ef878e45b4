#include "core/untrusted_json.hpp"

#include <utility>
#include <vector>

#include "ckptio/error.hpp"
#include "core/quoted.hpp"

namespace ckptio::detail {
namespace {

using nlohmann::json;
using Problem = UntrustedJsonResult::Problem;

// nlohmann's SAX parser keeps its own state in a vector, not on the call stack; this handler
// builds the document the same way (a stack of open containers) and stops at the first
// value nested too deeply or key given twice.
class BoundedDocumentBuilder {
 public:
  BoundedDocumentBuilder(UntrustedJsonResult& result, const UntrustedJsonOptions& options)
      : result_(result), options_(options) {}

  bool null() { return add(json(nullptr)); }
  bool boolean(bool v) { return add(json(v)); }
  bool number_integer(json::number_integer_t v) { return add(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return add(json(v)); }
  bool string(json::string_t& v) { return add(json(std::move(v))); }
  bool binary(json::binary_t& v) { return add(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    json& object = *open_.back();
    if (options_.reject_duplicate_keys && object.contains(k)) {
      result_.problem = Problem::DuplicateKey;
      result_.key = k;
      result_.depth = open_.size();
      return false;
    }
    next_member_ = &object[std::move(k)];
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    result_.problem = Problem::Syntax;
    result_.syntax_error = e.what();
    return false;
  }

 private:
  // Where the next value goes: the root, the end of the open array, or the member just named.
  json* slot() {
    if (open_.empty()) return &result_.value;
    json& parent = *open_.back();
    if (parent.is_array()) {
      parent.emplace_back();
      return &parent.back();
    }
    return next_member_;
  }
  bool add(json&& value) {
    *slot() = std::move(value);
    return true;
  }
  bool open(json::value_t type) {
    if (open_.size() >= options_.max_depth) {
      result_.problem = Problem::TooDeep;
      return false;
    }
    json* place = slot();
    *place = json(type);
    open_.push_back(place);
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  UntrustedJsonResult& result_;
  const UntrustedJsonOptions& options_;
  std::vector<json*> open_;  // arrays and objects being filled, outermost first
  json* next_member_ = nullptr;
};

}  // namespace

std::string UntrustedJsonResult::describe(const UntrustedJsonOptions& options) const {
  switch (problem) {
    case Problem::None:
      return {};
    case Problem::Syntax:
      return "not valid JSON: " + syntax_error;
    case Problem::TooDeep:
      return "nested more than " + std::to_string(options.max_depth) + " levels deep";
    case Problem::DuplicateKey:
      return "key " + quoted_text(key) + " appears twice in one object";
  }
  return {};
}

UntrustedJsonResult try_parse_untrusted_json(std::string_view text, const UntrustedJsonOptions& options) {
  UntrustedJsonResult result;
  BoundedDocumentBuilder builder(result, options);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, true);
  } catch (const json::exception& e) {  // the lexer reports some errors by throwing
    result.problem = Problem::Syntax;
    result.syntax_error = e.what();
  }
  if (!ok && result.problem == Problem::None) {
    result.problem = Problem::Syntax;
    result.syntax_error = "incomplete document";
  }
  if (result.problem != Problem::None) result.value = nullptr;  // its depth is bounded: freed safely
  return result;
}

json parse_untrusted_json(std::string_view text, const std::string& what, const UntrustedJsonOptions& options) {
  UntrustedJsonResult result = try_parse_untrusted_json(text, options);
  if (result.problem != Problem::None) throw FormatError(what + ": " + result.describe(options));
  return std::move(result.value);
}

std::size_t json_depth(const json& value, std::size_t limit) {
  std::size_t deepest = 0;
  std::vector<std::pair<const json*, std::size_t>> pending{{&value, 0}};
  while (!pending.empty()) {
    const auto [v, depth] = pending.back();
    pending.pop_back();
    if (!v->is_structured()) continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return limit + 1;
    for (const auto& child : *v) pending.emplace_back(&child, depth + 1);
  }
  return deepest;
}

}  // namespace ckptio::detail
