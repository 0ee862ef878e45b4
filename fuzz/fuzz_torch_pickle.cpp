// libFuzzer target: the weights-only unpickler on arbitrary bytes. Any ckptio::Error is a
// clean refusal; a crash, a sanitizer report, a leak or another exception is a bug.
#include <cstddef>
#include <cstdint>

#include "ckptio/error.hpp"
#include "formats/torch_pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto result = ckptio::detail::formats::unpickle_state_dict({data, size}, "fuzz");
    for (const auto& [key, value] : result.values)
      (void)value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const ckptio::Error&) {
  }
  return 0;
}
