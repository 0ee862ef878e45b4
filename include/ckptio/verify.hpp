// ckptio: full verification of a container (format, completeness, every checksum).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ckptio {

struct VerifyReport {
  std::filesystem::path path;
  int format_version = 0;  // 0 when the file could not be opened as a container
  std::size_t tensors = 0;
  std::size_t pieces = 0;             // stored pieces verified
  std::uint64_t bytes_verified = 0;   // tensor bytes read and hashed, over every rank
  std::vector<std::string> problems;  // one line each, naming file, tensor and piece; empty: good
  bool ok() const { return problems.empty(); }
};

// Collective over comm (use MPI_COMM_SELF for one process). Checks that `file` is a ckptio
// container of a supported format version, that its index is well-formed, that the stored
// pieces cover every tensor and match the datasets, and that every stored checksum (tensor
// pieces and their chunks, running state, per-rank blobs) matches; the ranks share the
// pieces. Damage is reported in VerifyReport::problems (the same on every rank), never
// thrown; throws IoError only when `file` cannot be read at all (missing, permissions).
VerifyReport verify_container(MPI_Comm comm, const std::filesystem::path& file);

}  // namespace ckptio
