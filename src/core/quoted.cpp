#include "core/quoted.hpp"

namespace ckptio::detail {
namespace {

// Length of the valid UTF-8 sequence at s[i] (1..4), or 0 when the bytes there are none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

void append_hex(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

}  // namespace

std::string quoted_text(std::string_view text, std::size_t max_bytes) {
  std::string out = "'";
  const bool cut = text.size() > max_bytes;
  if (cut) text = text.substr(0, max_bytes);
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {  // kept when it is valid UTF-8, so that the message stays valid UTF-8
      const std::size_t len = utf8_sequence(text, i);
      if (len == 0) {
        append_hex(out, c);
        ++i;
      } else {
        out.append(text.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          append_hex(out, c);
        else
          out += static_cast<char>(c);
    }
    ++i;
  }
  return out + (cut ? "...'" : "'");
}

std::string printable_text(std::string_view text, std::size_t max_bytes) {
  const std::string q = quoted_text(text, max_bytes);
  // Unchanged by quoting: only the two quotes were added.
  if (q.size() == text.size() + 2 && q.compare(1, text.size(), text) == 0) return std::string(text);
  return q;
}

}  // namespace ckptio::detail
