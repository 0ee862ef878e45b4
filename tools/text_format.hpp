// ckptio tool: small renderings shared by the text output of the subcommands.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "ckptio/shard.hpp"

namespace ckptio::tool {

// Bytes with a binary unit for people: "512 B", "1.5 KiB", "12.0 MiB".
std::string human_bytes(std::uint64_t bytes);

// A tensor shape as "[4, 8]"; a scalar (no dimensions) as "scalar".
std::string format_shape(const Shape& shape);

// Rows of cells printed as aligned columns, two spaces apart, each line starting with
// `indent`. Columns whose flag in right_aligned is true (numbers) align to the right.
struct TextTable {
  std::vector<bool> right_aligned;
  std::vector<std::vector<std::string>> rows;

  void print(std::ostream& out, const std::string& indent = "") const;
};

}  // namespace ckptio::tool
