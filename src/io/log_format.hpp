// Figures in log lines: sizes, durations and rates, formatted the same way everywhere.
#pragma once

#include <chrono>
#include <string>

namespace ckptio::detail {

// "512 B", "1.50 MiB", ...
std::string human_bytes(double bytes);
// `value` with `digits` decimals.
std::string fixed(double value, int digits);
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace ckptio::detail
