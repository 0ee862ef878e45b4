// One save as a sequence of named phases, each collective over the transaction's
// communicator and ending in an agreement (a failure on any rank throws the same error on
// every rank):
//   plan -> create -> write -> metadata -> durable -> export -> commit -> retain
// plan gathers every rank's shards and picks the writers; create makes
// <root>/<name>.partial and its datasets and reserves the file's space; write writes this
// rank's pieces; metadata writes the index, running state and rank blobs; durable closes and
// fsyncs the file; export writes the save-time safetensors export; commit renames the file
// into place and updates `latest` (rank 0, after every rank agreed it is ready); retain
// prunes old checkpoints (never fatal). The phases live in save_phases.cpp.
//
// A transaction that ends before its commit (an agreed failure, or any exception leaving a
// phase) aborts: the file is closed, rank 0 removes the `.partial`, and one warning is logged.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ckptio/checkpoint_io.hpp"
#include "core/write_plan.hpp"
#include "h5/index_codec.hpp"
#include "io/local_tensors.hpp"
#include "mpi/agree.hpp"

namespace ckptio::detail {

namespace h5 {
class ContainerWriter;
}

class SaveTransaction {
 public:
  SaveTransaction(const Comm& comm, std::filesystem::path root, const CheckpointOptions& options,
                  const Snapshot& snapshot);
  ~SaveTransaction();  // aborts a transaction that has not committed
  SaveTransaction(const SaveTransaction&) = delete;
  SaveTransaction& operator=(const SaveTransaction&) = delete;

  // Before plan(): the container is node `node`'s part of a node-local checkpoint over
  // `nodes` nodes (comm holds that node's ranks): its tensors need not be covered. Its fault
  // points are named local.node.<phase> instead of save.<phase>, and fire by `world_rank`, so
  // that a crash test can kill a rank of a node's save without touching the shared saves.
  void save_node_part(int node, int nodes, int world_rank) {
    node_ = node;
    nodes_ = nodes;
    fault_prefix_ = "local.node.";
    fault_rank_ = world_rank;
  }

  // Every phase in order; returns the committed checkpoint's path.
  std::filesystem::path run();

  // The phases, in the order run() calls them. `allow_device`: the shards may be in device
  // memory (save_async, which stages them before create()).
  void plan(bool allow_device = false);
  void create();
  void write();
  void metadata();
  void durable();
  void export_group();
  void commit();
  void retain();
  // Logs what was saved, how fast; returns the committed path. Collective.
  std::filesystem::path finish();

  // For save_async, between plan() on the caller's thread and create() on the I/O thread:
  // the remaining phases run over `comm` (a duplicate of the caller's) and read the
  // snapshot `staged`, a copy of the planned one whose written shards point into the
  // staging pool. Both must outlive the transaction.
  void continue_on(const Comm& comm, const Snapshot& staged);
  // For save_async, after plan() and before continue_on(), on the caller's thread: fills the
  // slots of `staged` (StagingPool::stage_device_shards) with the pieces this rank writes
  // from its host shards, and computes every written piece's checksums, each checksum chunk
  // while the copy has it in the cache (device shards, staged already, are hashed in their
  // staged copies). write() then only writes: the I/O thread neither hashes nor reads the
  // bytes a second time. Not collective.
  void stage_written_pieces(const Snapshot& staged);
  // After plan(): for each of this rank's tensors (in declaration order), whether this rank
  // writes some piece of it, that is, whether the remaining phases read its memory.
  std::vector<bool> written_tensors() const;
  const std::filesystem::path& final_path() const { return final_path_; }

 private:
  // Runs `fn` on this rank and agrees; on a failure every rank aborts, then throws.
  template <class F>
  void agreed(std::string_view operation, F&& fn) {
    run_agreed_or(*comm_, operation, std::forward<F>(fn), [this](const Failure&) { abort(); });
  }
  void abort() noexcept;
  // Calls fn(tensor_index, piece_index, piece) for every planned piece that this rank
  // writes, in plan order (after plan()).
  template <class F>
  void for_each_written_piece(F&& fn) const {
    const int rank = comm_->rank();
    for (std::size_t ti = 0; ti < plan_.tensors.size(); ++ti) {
      const auto& pieces = plan_.tensors[ti].pieces;
      for (std::size_t pi = 0; pi < pieces.size(); ++pi)
        if (pieces[pi].writer == rank) fn(ti, pi, pieces[pi]);
    }
  }
  std::uint64_t file_size_estimate() const;
  // End of create(): every rank's blob record; rank 0 starts encoding the index.
  void prepare_index();
  // save_fault_point of this transaction's phase `phase` (save.<phase> or local.node.<phase>).
  void fault_point_of(std::string_view phase) const;

  const Comm* comm_;
  std::filesystem::path root_;
  CheckpointOptions options_;
  const Snapshot* snapshot_;
  std::chrono::steady_clock::time_point start_;

  std::vector<LocalTensor> local_;
  WritePlan plan_;
  std::string running_json_;
  std::string provenance_;  // rank 0's host name and time, "host\ntime"
  std::string name_;
  std::filesystem::path final_path_;
  std::filesystem::path partial_;
  std::unique_ptr<h5::ContainerWriter> writer_;
  std::uint64_t reserved_bytes_ = 0;
  std::string my_checksums_;                // h5/index_tables.hpp
  std::vector<h5::BlobRecord> rank_blobs_;  // every rank's blob record (prepare_index)
  // Rank 0: the index text with every piece checksum 0 and where the checksums go, encoded
  // on another thread while write() runs; metadata() fills the checksums in. Declared after
  // plan_, which that thread reads: destroyed (waited for) before it.
  struct PreparedIndex {
    std::string text;
    h5::ChecksumPlaces places;
  };
  std::future<PreparedIndex> prepared_index_;
  bool checksummed_ = false;  // my_checksums_ is complete before write() (stage_written_pieces)
  bool partial_may_exist_ = false;
  bool in_background_ = false;  // the phases after plan() run on save_async's I/O thread (continue_on)
  bool committed_ = false;
  bool aborted_ = false;
  int node_ = 0;
  int nodes_ = 0;  // 0: a complete container
  std::string fault_prefix_ = "save.";
  int fault_rank_ = -1;  // -1: the rank in comm
};

// A fault point of the save phases: core/fault's (CKPTIO_FAULT_INJECT) and the one set by
// inject_save_fault_for_testing.
void save_fault_point(std::string_view point, int rank);

// Tests that walk every phase in one process: the next save that reaches `point` on `rank`
// (-1: every rank) throws IoError "injected fault at <point>", once. An empty point clears it.
// Only in a build with CKPTIO_FAULT_INJECTION; elsewhere a point is refused with UsageError.
void inject_save_fault_for_testing(std::string point, int rank);

}  // namespace ckptio::detail
