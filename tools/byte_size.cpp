#include "byte_size.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <utility>

#include "ckptio/error.hpp"

namespace ckptio::tool {

std::uint64_t parse_byte_size(std::string_view text) {
  std::string s(text);
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
  std::size_t digits = 0;
  while (digits < s.size() && (std::isdigit(static_cast<unsigned char>(s[digits])) || s[digits] == '.')) ++digits;
  if (digits == 0) throw UsageError("invalid size '" + std::string(text) + "' (expected e.g. 5GB or 500MiB)");
  std::string unit = s.substr(digits);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
      {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    double value = 0;
    try {
      std::size_t used = 0;
      value = std::stod(s.substr(0, digits), &used);
      if (used != digits) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw UsageError("invalid size '" + std::string(text) + "' (expected e.g. 5GB or 500MiB)");
    }
    const double bytes = value * factor;
    if (!(bytes >= 1) || bytes > 1.8e19) throw UsageError("size '" + std::string(text) + "' is out of range");
    return static_cast<std::uint64_t>(bytes);
  }
  throw UsageError("invalid size '" + std::string(text) +
                   "': unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

}  // namespace ckptio::tool
