// The node-local level of CheckpointIO (CheckpointOptions::local_dir, docs/MULTILEVEL.md).
//
// On each node's local storage, under the local folder:
//   node{N}/epoch{E}-global_step{G}.h5          the pieces of node N's ranks (a container
//                                               saved over the node's communicator)
//   node{N}/epoch{E}-global_step{G}.h5.level    its commit record, written only after every
//                                               rank agreed that every node and every
//                                               partner copy succeeded
//   partner/node{M}/...h5 and .h5.level          copies of node M's container
// A record names the job and the layout (the node of every rank); a copy counts only when
// its record exists and both match the current job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/checkpoint_io.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

class LocalLevel {
 public:
  // Collective over world: splits it into nodes (MPI_Comm_split_type SHARED) and their
  // leaders, creates this node's local folder.
  LocalLevel(const Comm& world, const CheckpointOptions& options);
  ~LocalLevel();
  LocalLevel(const LocalLevel&) = delete;
  LocalLevel& operator=(const LocalLevel&) = delete;

  // Collective over world. Saves each node's pieces into its local folder, sends the partner
  // copies, agrees, writes the commit records, prunes old local checkpoints. Throws the
  // agreed error on every rank when any node or copy failed (nothing is then committed).
  // Fault points (core/fault.hpp), in order: local.node.<phase> (the node's container, the
  // phases of save_transaction.hpp), local.partner.send, local.partner.chunk (after the first
  // chunk) and local.partner.receive (in a partner copy), local.partner (after the copies, before the agreement),
  // local.commit (agreed, no record written yet), local.records (this node's own record written, its partner records
  // not), local.prune.
  // `world`: a duplicate of the world communicator for a save on the background engine's
  // thread (save_async), whose collectives must not mix with the caller's; the node and
  // leader communicators are this object's alone (every other call waits for that save).
  void save(const Snapshot& snapshot, const CheckpointOptions& options) { save(snapshot, options, world_); }
  void save(const Snapshot& snapshot, const CheckpointOptions& options, const Comm& world);

  // The shared root committed a flush of `global_step`: local checkpoints older than it are
  // pruned (restart would not choose them). Collective over world when `prune_now`; otherwise
  // (a background flush, from the I/O thread) only noted for the next local save's pruning.
  void flushed(std::int64_t global_step, bool prune_now);

  // Collective over world. Restores the newest complete local checkpoint not older than
  // `shared_step` (the shared root's newest, -1: none): every node's container must be on
  // some node now (own or partner copy) and verify; copies a node lacks are sent to it.
  // nullopt (with a log line saying why) when the shared root should be used instead.
  std::optional<LoadResult> load_latest(const Snapshot& targets, const LoadOptions& options, std::int64_t shared_step);

  int node() const { return node_; }
  int nodes() const { return nodes_; }
  const std::filesystem::path& folder() const { return folder_; }

 private:
  struct Copy;
  std::vector<Copy> scan_copies();
  std::string node_name(int node) const;  // "node 1 (host gpu17)"
  void prune();

  const Comm& world_;
  Comm node_comm_;
  Comm leaders_;  // the lowest world rank of each node; unset elsewhere
  int node_ = 0;
  int nodes_ = 1;
  std::vector<int> rank_nodes_;          // node of each world rank
  std::vector<std::string> node_hosts_;  // host name of each node (of its lowest rank), for logs
  std::string job_;
  std::filesystem::path folder_;  // this node's local folder, job substituted
  int partner_copies_ = 1;
  bool buffered_ = false;  // the local folder is on tmpfs: no O_DIRECT there
  int keep_last_ = 2;
  std::int64_t flushed_step_ = -1;         // the newest flush to the shared root known here
  std::unique_ptr<CheckpointIO> node_io_;  // loads over node_comm_ from folder_/node{N}
};

// "epoch{E}-global_step{G}.h5" -> G; -1 when the name is not of that form.
std::int64_t global_step_of(const std::string& file_name);

}  // namespace ckptio::detail
