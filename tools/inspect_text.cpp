#include "inspect_text.hpp"

#include <algorithm>
#include <string>

#include "ckptio/dtype.hpp"
#include "container_totals.hpp"
#include "json_summary.hpp"
#include "text_format.hpp"

namespace ckptio::tool {
namespace {

// A JSON value longer than this is summarised; `--json` prints it whole.
constexpr std::size_t kMaxJsonChars = 100;
// Up to this many saving ranks, every rank's blob size is listed.
constexpr std::size_t kMaxListedBlobs = 8;

std::string json_line(const nlohmann::json& value) {
  const std::string whole = compact_json(value);
  if (whole.size() <= kMaxJsonChars) return whole;
  return summarize_json(value, kMaxJsonChars) + "  (summarised from " + std::to_string(whole.size()) +
         " bytes of JSON; --json prints it whole)";
}

std::string rank_blobs_line(const std::vector<std::uint64_t>& sizes, std::uint64_t total) {
  if (sizes.empty()) return "none";
  std::string text = std::to_string(sizes.size()) + (sizes.size() == 1 ? " rank: " : " ranks: ");
  if (sizes.size() <= kMaxListedBlobs) {
    for (std::size_t rank = 0; rank < sizes.size(); ++rank) {
      if (rank > 0) text += ", ";
      text += human_bytes(sizes[rank]);
    }
  } else {
    const auto [smallest, largest] = std::minmax_element(sizes.begin(), sizes.end());
    text += human_bytes(*smallest) + " to " + human_bytes(*largest) + " each";
  }
  return text + " (" + human_bytes(total) + " in all)";
}

void print_header(const ckptio::ContainerInfo& info, std::ostream& out) {
  TextTable table{{}, {}};
  table.rows = {
      {"container", info.path.string()},
      {"file size", human_bytes(info.file_bytes) + " (" + std::to_string(info.file_bytes) + " bytes)"},
      {"format", "ckptio container, format version " + std::to_string(info.format_version)},
      {"library", "ckptio " + info.library_version},
      {"created", info.created},
      {"host", info.host},
      {"world size", std::to_string(info.world_size)},
  };
  table.print(out);
}

void print_running_state(const ckptio::ContainerInfo& info, const ContainerTotals& totals, std::ostream& out) {
  const auto& running = info.running;
  out << "\nrunning state\n";
  TextTable table{{}, {}};
  table.rows = {
      {"epoch", std::to_string(running.epoch)},
      {"step", std::to_string(running.step)},
      {"global_step", std::to_string(running.global_step)},
      {"lr_scheduler", json_line(running.lr_scheduler)},
      {"sampler", json_line(running.sampler)},
      {"extras", json_line(running.extras)},
      {"rank blobs", rank_blobs_line(info.rank_blob_sizes, totals.rank_blob_bytes)},
  };
  table.print(out, "  ");
}

void print_tensors(const ckptio::ContainerInfo& info, std::ostream& out) {
  out << "\ntensors\n";
  if (info.tensors.empty()) {
    out << "  none\n";
    return;
  }
  TextTable table{{false, false, false, false, true, true}, {}};
  table.rows.push_back({"GROUP", "NAME", "DTYPE", "SHAPE", "BYTES", "PIECES"});
  for (const auto& tensor : info.tensors) {
    table.rows.push_back({tensor.group, tensor.name, std::string(ckptio::dtype_name(tensor.dtype)),
                          format_shape(tensor.shape), human_bytes(tensor.bytes), std::to_string(tensor.pieces)});
  }
  table.print(out, "  ");
}

void print_totals(const ckptio::ContainerInfo& info, const ContainerTotals& totals, std::ostream& out) {
  out << "\ntotals\n";
  auto tensors = [](std::size_t count) { return std::to_string(count) + (count == 1 ? " tensor" : " tensors"); };
  TextTable table{{false, true, true}, {}};
  for (const auto& group : totals.groups) {
    table.rows.push_back({group.group, tensors(group.tensors), human_bytes(group.bytes)});
  }
  table.rows.push_back({"all", tensors(totals.tensors), human_bytes(totals.tensor_bytes)});
  table.print(out, "  ");
  out << "  rank blobs " << human_bytes(totals.rank_blob_bytes) << ", file " << human_bytes(info.file_bytes) << '\n';
}

}  // namespace

void print_inspect_text(const ckptio::ContainerInfo& info, std::ostream& out) {
  const ContainerTotals totals = container_totals(info);
  print_header(info, out);
  print_running_state(info, totals, out);
  print_tensors(info, out);
  print_totals(info, totals, out);
}

}  // namespace ckptio::tool
