// XXH3-64 checksums, stored in containers as 16 lowercase hex digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckptio::detail {

std::uint64_t xxh3_64(const void* data, std::size_t bytes) noexcept;
std::string to_hex64(std::uint64_t value);
// The 16 lowercase hex digits of to_hex64 into out[0..15] (no terminator).
void write_hex64(std::uint64_t value, char* out) noexcept;
std::optional<std::uint64_t> from_hex64(std::string_view text) noexcept;

}  // namespace ckptio::detail
