// ckptio tool: sizes as users type them (`--max-shard-size 5GB`).
#pragma once

#include <cstdint>
#include <string_view>

namespace ckptio::tool {

// Parses a size with Hugging Face's units: "5GB" = 5*10^9, "5GiB" = 5*2^30, also KB/MB/TB,
// KiB/MiB/TiB, "B" or a plain number of bytes (case-insensitive). Throws ckptio::UsageError.
std::uint64_t parse_byte_size(std::string_view text);

}  // namespace ckptio::tool
