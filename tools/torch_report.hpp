// ckptio tool: `ckptio inspect` of a PyTorch .pt/.pth file, as text and as JSON (schema
// "ckptio.inspect-pt/1", documented in docs/TOOL.md).
#pragma once

#include <filesystem>
#include <ostream>

#include <nlohmann/json.hpp>

#include "ckptio/torch_file.hpp"

namespace ckptio::tool {

inline constexpr const char* kInspectTorchSchema = "ckptio.inspect-pt/1";

void print_torch_text(const std::filesystem::path& path, const ckptio::TorchFile& file, std::ostream& out);
nlohmann::json torch_document(const std::filesystem::path& path, const ckptio::TorchFile& file);

}  // namespace ckptio::tool
