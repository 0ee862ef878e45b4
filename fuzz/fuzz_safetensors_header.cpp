// libFuzzer target: the safetensors header parser on arbitrary bytes. It must either accept
// the input or throw ckptio::Error; an accepted header must serialize and parse back to the
// same tensors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ckptio/error.hpp"
#include "formats/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ckptio::detail;
  SafetensorsHeader header;
  try {
    header = parse_safetensors_header("fuzz.safetensors", data, size, size);
  } catch (const ckptio::Error&) {
    return 0;
  }
  std::uint64_t expected = 0;
  for (const auto& t : header.tensors) {
    if (t.begin != expected || t.end < t.begin) std::abort();
    expected = t.end;
  }
  if (header.data_start() + expected != size) std::abort();
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : header.tensors) entries.push_back({t.name, t.dtype, t.shape});
  SerializedHeader again;
  try {
    again = serialize_safetensors_header(entries, header.metadata);
  } catch (const ckptio::UsageError&) {
    return 0;  // e.g. a tensor named __metadata__ cannot be written back
  }
  const std::string file = again.bytes + std::string(again.data_bytes, '\0');
  const auto reparsed =
      parse_safetensors_header("again", reinterpret_cast<const unsigned char*>(file.data()), file.size(), file.size());
  if (reparsed.tensors.size() != header.tensors.size() || reparsed.metadata != header.metadata) std::abort();
  for (const auto& t : reparsed.tensors) {
    const auto* original = header.find(t.name);
    if (!original || original->dtype != t.dtype || original->shape != t.shape || original->bytes() != t.bytes())
      std::abort();
  }
  return 0;
}
