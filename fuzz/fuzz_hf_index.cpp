// libFuzzer target: the Hugging Face index parser on arbitrary text. It must either accept
// the input or throw ckptio::Error, and never accept a file name that leaves its folder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ckptio/error.hpp"
#include "formats/hf_layout.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ckptio::detail;
  HfIndex index;
  try {
    index = parse_hf_index("fuzz.index.json", std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const ckptio::Error&) {
    return 0;
  }
  for (const auto& [tensor, file] : index.weight_map) {
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos)
      std::abort();
  }
  return 0;
}
