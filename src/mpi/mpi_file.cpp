#include "mpi/mpi_file.hpp"

#include <algorithm>
#include <utility>

#include "ckptio/error.hpp"
#include "mpi/mpi_error.hpp"

namespace ckptio::detail {

std::uint64_t mpi_transfer_once(MPI_File file, bool write, std::uint64_t offset, char* data, std::uint64_t bytes,
                                const std::string& what) {
  MPI_Status status;
  const auto at = static_cast<MPI_Offset>(offset);
  const int count_in = static_cast<int>(std::min(bytes, kMaxMpiIoCallBytes));
  const int rc = write ? MPI_File_write_at(file, at, data, count_in, MPI_BYTE, &status)
                       : MPI_File_read_at(file, at, data, count_in, MPI_BYTE, &status);
  if (rc != MPI_SUCCESS) throw IoError(what + ": " + mpi_error_string(rc));
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  return static_cast<std::uint64_t>(std::max(count, 0));
}

MpiFile::MpiFile(MPI_Comm comm, const std::string& path, int amode) : path_(path) {
  const int rc = MPI_File_open(comm, path.c_str(), amode, MPI_INFO_NULL, &file_);
  if (rc != MPI_SUCCESS) {
    file_ = MPI_FILE_NULL;
    throw IoError(((amode & MPI_MODE_CREATE) ? "cannot create " : "cannot open ") + path + ": " + mpi_error_string(rc));
  }
}

MpiFile::MpiFile(MpiFile&& other) noexcept
    : file_(std::exchange(other.file_, MPI_FILE_NULL)), path_(std::move(other.path_)) {}

void MpiFile::write_at(std::uint64_t offset, const void* data, std::uint64_t bytes) {
  // mpi_transfer_once serves both directions; on a write it only reads from p.
  char* p = const_cast<char*>(static_cast<const char*>(data));
  const std::string what = "cannot write " + path_;
  while (bytes > 0) {
    const std::uint64_t n = std::min(bytes, kMaxMpiIoCallBytes);
    const std::uint64_t done = mpi_transfer_once(file_, true, offset, p, n, what);
    if (done == 0)
      throw IoError(what + ": wrote 0 of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                    " (file system full?)");
    offset += done;
    p += done;
    bytes -= done;
  }
}

void MpiFile::sync() {
  const int rc = MPI_File_sync(file_);
  if (rc != MPI_SUCCESS) throw IoError("cannot flush " + path_ + ": " + mpi_error_string(rc));
}

void MpiFile::close() noexcept {
  if (file_ != MPI_FILE_NULL) MPI_File_close(&file_);
}

}  // namespace ckptio::detail
