#include "torch_report.hpp"

#include "json_summary.hpp"
#include "text_format.hpp"

namespace ckptio::tool {
namespace {

// A value longer than this is summarised; `--json` prints it whole.
constexpr std::size_t kMaxJsonChars = 100;

std::uint64_t total_bytes(const ckptio::TorchFile& file) {
  std::uint64_t total = 0;
  for (const auto& t : file.tensors()) total += t.bytes;
  return total;
}

}  // namespace

void print_torch_text(const std::filesystem::path& path, const ckptio::TorchFile& file, std::ostream& out) {
  const std::uint64_t file_bytes = std::filesystem::file_size(path);
  TextTable header{{}, {}};
  header.rows = {
      {"file", path.string()},
      {"file size", human_bytes(file_bytes) + " (" + std::to_string(file_bytes) + " bytes)"},
      {"format", file.folder().empty()
                     ? std::string("PyTorch torch.save file, legacy format (PyTorch < 1.6), read weights-only")
                     : "PyTorch torch.save archive (folder '" + file.folder() + "'), read weights-only"},
  };
  header.print(out);

  out << "\ntensors\n";
  if (file.tensors().empty()) {
    out << "  none\n";
  } else {
    TextTable table{{false, false, false, true}, {}};
    table.rows.push_back({"NAME", "DTYPE", "SHAPE", "BYTES"});
    for (const auto& t : file.tensors()) {
      table.rows.push_back(
          {t.name, std::string(ckptio::dtype_name(t.dtype)), format_shape(t.shape), human_bytes(t.bytes)});
    }
    table.print(out, "  ");
  }

  out << "\nvalues\n";
  if (file.values().empty()) {
    out << "  none\n";
  } else {
    TextTable table{{}, {}};
    for (const auto& [key, value] : file.values()) {
      const std::string whole = compact_json(value);
      table.rows.push_back({key, whole.size() <= kMaxJsonChars ? whole : summarize_json(value, kMaxJsonChars)});
    }
    table.print(out, "  ");
  }

  const std::size_t count = file.tensors().size();
  out << "\ntotals\n  " << count << (count == 1 ? " tensor  " : " tensors  ") << human_bytes(total_bytes(file))
      << ", file " << human_bytes(file_bytes) << '\n';
}

nlohmann::json torch_document(const std::filesystem::path& path, const ckptio::TorchFile& file) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : file.tensors()) {
    tensors.push_back({{"name", t.name},
                       {"dtype", std::string(ckptio::dtype_name(t.dtype))},
                       {"shape", t.shape},
                       {"elements", t.elements()},
                       {"bytes", t.bytes},
                       {"contiguous", t.contiguous}});
  }
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [key, value] : file.values()) values[key] = value;
  return {
      {"schema", kInspectTorchSchema},
      {"path", path.string()},
      {"file_bytes", std::filesystem::file_size(path)},
      {"format", "pytorch"},
      {"folder", file.folder()},
      {"tensors", std::move(tensors)},
      {"values", std::move(values)},
      {"totals", {{"tensors", file.tensors().size()}, {"tensor_bytes", total_bytes(file)}}},
  };
}

}  // namespace ckptio::tool
