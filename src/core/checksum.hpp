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
std::optional<std::uint64_t> from_hex64(std::string_view text) noexcept;

}  // namespace ckptio::detail
