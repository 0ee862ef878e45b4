#include "json_summary.hpp"

namespace ckptio::tool {
namespace {

constexpr std::size_t kMaxWholeArrayChars = 40;
constexpr std::size_t kMaxStringChars = 40;
constexpr int kMaxObjectDepth = 2;

// Cuts text to at most max_bytes without splitting a UTF-8 sequence.
std::string cut_utf8(const std::string& text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string summarize(const nlohmann::json& value, int depth) {
  if (value.is_array()) {
    std::string whole = compact_json(value);
    if (whole.size() <= kMaxWholeArrayChars) return whole;
    return "[" + std::to_string(value.size()) + " items]";
  }
  if (value.is_object()) {
    if (value.empty()) return "{}";
    if (depth >= kMaxObjectDepth) return "{" + std::to_string(value.size()) + " keys}";
    std::string text = "{";
    bool first = true;
    for (const auto& [key, member] : value.items()) {
      if (!first) text += ",";
      first = false;
      text += compact_json(key) + ":" + summarize(member, depth + 1);
    }
    return text + "}";
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text.size() <= kMaxStringChars) return compact_json(value);
    return compact_json(cut_utf8(text, kMaxStringChars) + "...");
  }
  return compact_json(value);
}

}  // namespace

std::string compact_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string summarize_json(const nlohmann::json& value, std::size_t max_chars) {
  std::string whole = compact_json(value);
  if (whole.size() <= max_chars) return whole;
  std::string summary = summarize(value, 0);
  if (summary.size() <= max_chars) return summary;
  const std::size_t keep = max_chars > 3 ? max_chars - 3 : 0;
  return cut_utf8(summary, keep) + "...";
}

}  // namespace ckptio::tool
