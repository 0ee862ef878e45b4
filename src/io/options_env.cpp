#include "io/options_env.hpp"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "ckptio/error.hpp"
#include "core/log.hpp"
#include "mpi/agree.hpp"

namespace ckptio::detail {

namespace {

// Rank 0's value of an environment variable on every rank, nullopt where it is unset there.
std::optional<std::string> rank0_environment(const Comm& comm, const char* name) {
  const std::string value = agreed_from_rank0(comm, "read environment", [&] {
    const char* env = std::getenv(name);
    return env ? "=" + std::string(env) : std::string();
  });
  if (value.empty()) return std::nullopt;
  return value.substr(1);
}

std::map<std::string, std::string> parse_hints(const std::string& spec) {
  std::map<std::string, std::string> hints;
  for (std::size_t pos = 0; pos < spec.size();) {
    std::size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("CKPTIO_MPIIO_HINTS: '" + item + "' is not key=value (expected key=value,key=value)");
    hints[item.substr(0, eq)] = item.substr(eq + 1);
    pos = end + 1;
  }
  return hints;
}

std::uint64_t parse_pack_max_bytes(const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long bytes = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || value[0] == '-' || *end != '\0' || errno != 0 || bytes > (1ull << 40))
    throw UsageError("CKPTIO_PACK_MAX_BYTES: '" + value + "' is not a byte count from 0 to 2^40");
  return bytes;
}

}  // namespace

CheckpointOptions with_environment(const Comm& comm, CheckpointOptions options) {
  const auto direct_io = rank0_environment(comm, "CKPTIO_DIRECT_IO");
  const auto hints = rank0_environment(comm, "CKPTIO_MPIIO_HINTS");
  const auto pack = rank0_environment(comm, "CKPTIO_PACK_MAX_BYTES");
  // Every rank parses the same values: the same outcome everywhere.
  run_agreed(comm, "read environment", [&] {
    if (direct_io && *direct_io != "0" && *direct_io != "1")
      throw UsageError("CKPTIO_DIRECT_IO: '" + *direct_io + "' is not 0 or 1");
    const auto env_hints = hints ? parse_hints(*hints) : std::map<std::string, std::string>{};
    if (direct_io && !options.direct_io) {
      options.direct_io = *direct_io == "1";
      log_info("CKPTIO_DIRECT_IO=", *direct_io, ": direct I/O ", *options.direct_io ? "on" : "off");
    }
    if (pack && !options.pack_max_bytes) {
      options.pack_max_bytes = parse_pack_max_bytes(*pack);
      log_info("CKPTIO_PACK_MAX_BYTES=", *pack, ": tensors of at most ", *options.pack_max_bytes, " bytes packed");
    }
    std::string added;
    for (const auto& [key, value] : env_hints)
      if (options.mpi_io_hints.emplace(key, value).second) added += (added.empty() ? "" : ",") + key + "=" + value;
    if (!added.empty()) log_info("CKPTIO_MPIIO_HINTS: MPI-IO hints ", added, " added");
  });
  return options;
}

h5::FileTuning file_tuning(const CheckpointOptions& options) {
  h5::FileTuning tuning;
  tuning.mpi_io_hints = options.mpi_io_hints;
  tuning.alignment = options.alignment;
  tuning.alignment_threshold = options.alignment;
  tuning.direct_io = options.direct_io.value_or(true);
  if (options.pack_max_bytes) tuning.packed_tensor_max_bytes = *options.pack_max_bytes;
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
