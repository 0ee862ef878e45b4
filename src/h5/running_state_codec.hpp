// The running state as stored in /_ckptio/running_state: compact JSON with the keys epoch,
// step, global_step, lr_scheduler, sampler and extras.
#pragma once

#include <string>

#include "ckptio/snapshot.hpp"

namespace ckptio::detail::h5 {

// Throws UsageError when a JSON value cannot be serialised (e.g. invalid UTF-8).
std::string encode_running_state(const RunningState& state);
// Throws FormatError naming `file` on malformed input.
RunningState decode_running_state(const std::string& text, const std::string& file);

}  // namespace ckptio::detail::h5
