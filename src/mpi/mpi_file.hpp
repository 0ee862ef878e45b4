// MPI-IO file access. Every MPI_File_* call of the library goes through here: on a file
// opened here (MpiFile, the safetensors export) or on the handle of HDF5's MPI-IO driver
// (h5::RawFile).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace ckptio::detail {

// Most bytes one MPI-IO call moves (its count is an int).
inline constexpr std::uint64_t kMaxMpiIoCallBytes = std::uint64_t{1} << 30;

// One MPI_File_write_at (or read_at) of at most kMaxMpiIoCallBytes at `offset`; returns the
// bytes moved (0: end of file, or a write that moved nothing). Throws IoError "what: <MPI's text>".
std::uint64_t mpi_transfer_once(MPI_File file, bool write, std::uint64_t offset, char* data, std::uint64_t bytes,
                                const std::string& what);

// A file opened with MPI_File_open, closed (collectively) when destroyed.
class MpiFile {
 public:
  // Collective over comm: opens `path` with `amode`. Throws IoError "cannot create <path>: ..."
  // (MPI_MODE_CREATE) or "cannot open <path>: ...".
  MpiFile(MPI_Comm comm, const std::string& path, int amode);
  ~MpiFile() { close(); }
  MpiFile(MpiFile&& other) noexcept;
  MpiFile& operator=(MpiFile&&) = delete;
  MpiFile(const MpiFile&) = delete;
  MpiFile& operator=(const MpiFile&) = delete;

  // Writes every byte (several calls when large). A full file system can end a write early
  // without an error class: a call that writes nothing is an IoError "cannot write <path>: ...".
  void write_at(std::uint64_t offset, const void* data, std::uint64_t bytes);
  // Collective. IoError "cannot flush <path>: ...".
  void sync();
  // Collective; errors are ignored (the data were synced, or the file is being discarded).
  void close() noexcept;

 private:
  MPI_File file_ = MPI_FILE_NULL;
  std::string path_;
};

}  // namespace ckptio::detail
