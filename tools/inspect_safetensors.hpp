// ckptio tool: `ckptio inspect` of a safetensors file, index or folder: text, and the JSON
// document of schema "ckptio.inspect-safetensors/1" (documented in docs/TOOL.md).
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>

#include "ckptio/safetensors.hpp"

namespace ckptio::tool {

inline constexpr const char* kInspectSafetensorsSchema = "ckptio.inspect-safetensors/1";

nlohmann::json inspect_safetensors_document(const ckptio::SafetensorsInfo& info);
void print_inspect_safetensors_text(const ckptio::SafetensorsInfo& info, std::ostream& out);

}  // namespace ckptio::tool
