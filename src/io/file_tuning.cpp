#include "io/file_tuning.hpp"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "ckptio/error.hpp"

namespace ckptio::detail {

h5::FileTuning file_tuning(const CheckpointOptions& options) {
  h5::FileTuning tuning;
  tuning.mpi_io_hints = options.mpi_io_hints;
  if (const char* env = std::getenv("CKPTIO_MPIIO_HINTS")) {
    std::string spec = env;
    for (std::size_t pos = 0; pos < spec.size();) {
      std::size_t end = spec.find(',', pos);
      if (end == std::string::npos) end = spec.size();
      const std::string item = spec.substr(pos, end - pos);
      const std::size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        throw UsageError("CKPTIO_MPIIO_HINTS: '" + item + "' is not key=value (expected key=value,key=value)");
      tuning.mpi_io_hints[item.substr(0, eq)] = item.substr(eq + 1);
      pos = end + 1;
    }
  }
  tuning.alignment = options.alignment;
  tuning.alignment_threshold = options.alignment;
  tuning.direct_io = options.direct_io;
  if (const char* env = std::getenv("CKPTIO_DIRECT_IO")) {
    const std::string value = env;
    if (value == "1")
      tuning.direct_io = true;
    else if (value == "0")
      tuning.direct_io = false;
    else
      throw UsageError("CKPTIO_DIRECT_IO: '" + value + "' is not 0 or 1");
  }
  // Which tensors are packed (docs/FORMAT.md, format version 2): at most this many bytes;
  // 0 packs none and writes format version 1, which ckptio releases before packing read.
  if (const char* env = std::getenv("CKPTIO_PACK_MAX_BYTES")) {
    const std::string value = env;
    char* end = nullptr;
    errno = 0;
    const unsigned long long bytes = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || value[0] == '-' || *end != '\0' || errno != 0 || bytes > (1ull << 40))
      throw UsageError("CKPTIO_PACK_MAX_BYTES: '" + value + "' is not a byte count from 0 to 2^40");
    tuning.packed_tensor_max_bytes = bytes;
  }
  // Direct writes of a piece whose file address and memory address differ modulo 4 KiB go
  // through a bounce buffer, a copy of every byte. Unless asked otherwise, large datasets
  // start on a 4 KiB boundary, so that save_async's page-aligned staging is written straight
  // from memory (its background CPU fell from 0.47 to 0.30 core-seconds per GiB; see
  // docs/PERFORMANCE.md). Costs at most 4 KiB of padding per dataset of 1 MiB or more.
  if (tuning.direct_io && tuning.alignment == 0) {
    tuning.alignment = 4096;
    tuning.alignment_threshold = std::uint64_t{1} << 20;
  }
  return tuning;
}

}  // namespace ckptio::detail
