// ckptio tool: the machine-readable report of `ckptio inspect --json`, schema
// "ckptio.inspect/1" (documented in docs/TOOL.md). Add keys freely; renaming or removing
// one, or changing its meaning, needs a new schema version.
#pragma once

#include <nlohmann/json.hpp>

#include "ckptio/inspect.hpp"

namespace ckptio::tool {

inline constexpr const char* kInspectSchema = "ckptio.inspect/1";

nlohmann::json inspect_document(const ckptio::ContainerInfo& info);

}  // namespace ckptio::tool
