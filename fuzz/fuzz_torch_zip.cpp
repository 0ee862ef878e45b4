// libFuzzer target: a whole .pt archive from arbitrary bytes: the zip reader (every entry
// read and CRC-checked), then TorchFile (the pickle, every tensor read whole and in part).
// Any ckptio::Error is a clean refusal; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckptio/error.hpp"
#include "ckptio/torch_file.hpp"
#include "formats/byte_source.hpp"
#include "formats/zip_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ckptio::detail::formats;
  try {
    const MemorySource source({data, size}, "fuzz");
    const ZipReader zip(source);
    for (const auto& entry : zip.entries()) {
      try {
        (void)zip.read_entry(entry);
      } catch (const ckptio::Error&) {
      }
    }
  } catch (const ckptio::Error&) {
  }
  try {
    const ckptio::TorchFile file({data, size}, "fuzz");
    for (std::size_t i = 0; i < file.tensors().size(); ++i) {
      const auto& t = file.tensors()[i];
      if (t.bytes > (1u << 20)) continue;  // keep each run small
      const auto whole = file.read(i);
      if (t.elements() > 2) {
        std::vector<std::uint8_t> part((t.elements() - 2) * ckptio::dtype_size(t.dtype));
        file.read_elements(i, 1, t.elements() - 1, part.data());
      }
    }
  } catch (const ckptio::Error&) {
  }
  return 0;
}
