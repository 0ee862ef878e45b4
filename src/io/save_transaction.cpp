#include "io/save_transaction.hpp"

#include <mutex>
#include <optional>

#include "ckptio/error.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "core/piece_checksum.hpp"
#include "h5/container_writer.hpp"
#include "h5/index_tables.hpp"
#include "io/fs_util.hpp"
#include "io/log_format.hpp"

namespace ckptio::detail {

namespace {

struct InjectedFault {
  std::string point;
  int rank = -1;
};

std::mutex& injected_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::optional<InjectedFault>& injected() {
  static std::optional<InjectedFault> fault;
  return fault;
}

}  // namespace

void save_fault_point(std::string_view point, int rank) {
  fault_point(point, rank);
  if (!fault_injection_compiled()) return;  // a user build carries no fault switch
  {
    const std::lock_guard lock(injected_mutex());
    auto& fault = injected();
    if (!fault || fault->point != point || (fault->rank >= 0 && fault->rank != rank)) return;
    fault.reset();
  }
  throw IoError("injected fault at " + std::string(point));
}

void inject_save_fault_for_testing(std::string point, int rank) {
  if (!fault_injection_compiled() && !point.empty())
    throw UsageError("fault injection is not compiled in (configure with -DCKPTIO_FAULT_INJECTION=ON)");
  const std::lock_guard lock(injected_mutex());
  if (point.empty())
    injected().reset();
  else
    injected() = InjectedFault{std::move(point), rank};
}

SaveTransaction::SaveTransaction(const Comm& comm, std::filesystem::path root, const CheckpointOptions& options,
                                 const Snapshot& snapshot)
    : comm_(&comm),
      root_(std::move(root)),
      options_(options),
      snapshot_(&snapshot),
      start_(std::chrono::steady_clock::now()) {}

SaveTransaction::~SaveTransaction() {
  if (!committed_) abort();
}

// Closes the file (collective: every rank aborts together, after an agreed failure),
// removes the partial file and says so once. Never throws.
void SaveTransaction::abort() noexcept {
  if (aborted_ || committed_) return;
  aborted_ = true;
  try {
    if (writer_) writer_->close();
  } catch (...) {
  }
  writer_.reset();
  if (!partial_may_exist_) return;  // failed before touching the disk
  if (comm_->rank() == 0) {
    try {
      remove_file_if_exists(partial_);
    } catch (...) {
    }
  }
  log_warn("save of ", name_, " failed; ", partial_.filename().string(), " removed, `latest` unchanged");
}

std::filesystem::path SaveTransaction::run() {
  PhaseTimes phases;  // for the debug log
  auto timed = [&](const char* name, auto&& phase) {
    phase();
    phases.done(name);
  };
  timed("plan", [&] { plan(); });
  timed("create", [&] { create(); });
  timed("write", [&] { write(); });
  timed("metadata", [&] { metadata(); });
  timed("durable", [&] { durable(); });
  timed("export", [&] { export_group(); });
  timed("commit", [&] { commit(); });
  timed("retain", [&] { retain(); });
  log_debug("save ", name_, ": ", plan_.tensors.size(), " tensors; seconds per phase: ", phases.text());
  return finish();
}

void SaveTransaction::continue_on(const Comm& comm, const Snapshot& staged) {
  comm_ = &comm;
  snapshot_ = &staged;
  in_background_ = true;
  // The staged copy has the same tensors in the same order; its shards not written by this
  // rank may still be in device memory, and are never read.
  local_ = collect_local_tensors(staged, comm.rank(), true);
}

void SaveTransaction::stage_written_pieces(const Snapshot& staged) {
  const std::vector<LocalTensor> slots = collect_local_tensors(staged, comm_->rank(), true);
  my_checksums_.clear();
  for_each_written_piece([&](std::size_t ti, std::size_t pi, const PlannedPiece& p) {
    const LocalTensor& source = local_[p.writer_decl];
    const LocalTensor& slot = slots[p.writer_decl];
    const Segment& segment = source.segments[p.writer_segment];
    char* destination = writable_byte_pointer(slot, segment);
    const PieceChecksums sums =
        source.shard->device == kHostMemory
            ? copy_and_checksum_piece(destination, byte_pointer(source, segment), p.bytes, kChecksumChunkBytes)
            : checksum_piece(destination, p.bytes, kChecksumChunkBytes);
    h5::append_piece_checksums(my_checksums_, ti, pi, sums);
  });
  checksummed_ = true;
}

std::vector<bool> SaveTransaction::written_tensors() const {
  std::vector<bool> written(local_.size(), false);
  for_each_written_piece([&](std::size_t, std::size_t, const PlannedPiece& p) { written[p.writer_decl] = true; });
  return written;
}

}  // namespace ckptio::detail
