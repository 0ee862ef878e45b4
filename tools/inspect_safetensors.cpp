#include "inspect_safetensors.hpp"

#include <string>

#include "text_format.hpp"

namespace ckptio::tool {

nlohmann::json inspect_safetensors_document(const ckptio::SafetensorsInfo& info) {
  nlohmann::json doc;
  doc["schema"] = kInspectSafetensorsSchema;
  doc["path"] = info.path.string();
  doc["files"] = nlohmann::json::array();
  for (const auto& f : info.files) doc["files"].push_back(f.string());
  doc["index"] = info.index ? nlohmann::json(info.index->string()) : nlohmann::json(nullptr);
  doc["metadata"] = info.metadata;
  doc["file_bytes"] = info.file_bytes;
  doc["tensor_bytes"] = info.tensor_bytes;
  doc["tensors"] = nlohmann::json::array();
  for (const auto& t : info.tensors)
    doc["tensors"].push_back({{"name", t.name},
                              {"dtype", std::string(ckptio::dtype_name(t.dtype))},
                              {"shape", t.shape},
                              {"bytes", t.bytes},
                              {"file", t.file}});
  return doc;
}

void print_inspect_safetensors_text(const ckptio::SafetensorsInfo& info, std::ostream& out) {
  TextTable header{{}, {}};
  header.rows = {
      {"safetensors", info.path.string()},
      {"files", std::to_string(info.files.size()) + " (" + human_bytes(info.file_bytes) + ")"},
  };
  if (info.index) header.rows.push_back({"index", info.index->string()});
  header.rows.push_back({"tensors", std::to_string(info.tensors.size()) + " (" + human_bytes(info.tensor_bytes) + ")"});
  header.print(out);
  out << "\nmetadata\n";
  if (info.metadata.empty()) out << "  none\n";
  TextTable metadata{{}, {}};
  for (const auto& [k, v] : info.metadata) metadata.rows.push_back({k, v});
  metadata.print(out, "  ");
  out << "\ntensors\n";
  if (info.tensors.empty()) {
    out << "  none\n";
    return;
  }
  TextTable table{{false, false, false, true, false}, {}};
  table.rows.push_back({"NAME", "DTYPE", "SHAPE", "BYTES", "FILE"});
  for (const auto& t : info.tensors)
    table.rows.push_back(
        {t.name, std::string(ckptio::dtype_name(t.dtype)), format_shape(t.shape), std::to_string(t.bytes), t.file});
  table.print(out, "  ");
}

}  // namespace ckptio::tool
