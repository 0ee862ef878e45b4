// libFuzzer target: the container index decoder (the JSON in /_ckptio/index), without HDF5
// or MPI. Any input must give a ContainerIndex or a ckptio::FormatError: never a crash, an
// out-of-bounds read or an allocation the input's size does not justify.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ckptio/error.hpp"
#include "h5/index_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // The fast reader of canonical text accepts only what the document reader reads the same.
  if (const auto fast = ckptio::detail::h5::decode_canonical_index(text)) {
    try {
      if (!(*fast == ckptio::detail::h5::decode_index_as_document(text, "fuzz.h5"))) __builtin_trap();
    } catch (const ckptio::FormatError&) {
      __builtin_trap();
    }
  }
  try {
    const auto index = ckptio::detail::h5::decode_index(text, "fuzz.h5");
    // What decodes must encode and decode again to the same index.
    const auto again = ckptio::detail::h5::decode_index(ckptio::detail::h5::encode_index(index), "fuzz.h5");
    if (again.tensors.size() != index.tensors.size() || again.world_size != index.world_size) __builtin_trap();
  } catch (const ckptio::FormatError&) {
  }
  return 0;
}
