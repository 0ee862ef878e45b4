// The phases of a save (save_transaction.hpp), in the order they run.
#include <algorithm>
#include <cstring>

#include "ckptio/error.hpp"
#include "ckptio/version.hpp"
#include "core/checksum.hpp"
#include "core/log.hpp"
#include "core/piece_checksum.hpp"
#include "core/piece_math.hpp"
#include "h5/container_format.hpp"
#include "h5/container_writer.hpp"
#include "h5/index_codec.hpp"
#include "h5/index_tables.hpp"
#include "h5/running_state_codec.hpp"
#include "io/fs_util.hpp"
#include "io/log_format.hpp"
#include "io/options_env.hpp"
#include "io/retention.hpp"
#include "io/save_export.hpp"
#include "io/save_transaction.hpp"

namespace ckptio::detail {

namespace {

// The JSON fields of the running state, hashed separately so that a mismatch across
// ranks can name the field.
std::string running_state_fingerprint(const RunningState& s) {
  const std::string parts[] = {std::to_string(s.epoch), std::to_string(s.step), std::to_string(s.global_step),
                               s.lr_scheduler.dump(),   s.sampler.dump(),       s.extras.dump()};
  std::string out;
  for (const auto& p : parts) {
    const std::uint64_t h = xxh3_64(p.data(), p.size());
    out.append(reinterpret_cast<const char*>(&h), sizeof h);
  }
  return out;
}

void check_running_state_agrees(const Comm& comm, const RunningState& state) {
  static const char* const kFields[] = {"epoch", "step", "global_step", "lr_scheduler", "sampler", "extras"};
  const auto all = comm.allgather_bytes(running_state_fingerprint(state));
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] == all[0]) continue;
    for (int f = 0; f < 6; ++f)
      if (std::memcmp(all[r].data() + 8 * f, all[0].data() + 8 * f, 8) != 0)
        throw MismatchError(std::string("running state field '") + kFields[f] + "' differs between rank 0 and rank " +
                            std::to_string(r) + "; it must be the same on every rank");
  }
}

}  // namespace

void SaveTransaction::fault_point_of(std::string_view phase) const {
  save_fault_point(fault_prefix_ + std::string(phase), fault_rank_ >= 0 ? fault_rank_ : comm_->rank());
}

// Plan (collective, metadata only): describe this rank's shards, gather every rank's, check
// that they agree, and pick one writer per distinct piece.
void SaveTransaction::plan(bool allow_device) {
  const int rank = comm_->rank();
  std::vector<TensorDecl> decls;
  agreed("save", [&] {
    const RunningState& rs = snapshot_->running;
    if (rs.epoch < 0 || rs.step < 0 || rs.global_step < 0) throw UsageError("epoch, step and global_step must be >= 0");
    local_ = collect_local_tensors(*snapshot_, rank, allow_device);
    for (const auto& t : local_) {
      TensorDecl d{t.group, *t.name, t.shard->dtype, t.shard->global_shape, {}};
      for (const auto& s : t.segments) d.segments.push_back(s.block);
      decls.push_back(std::move(d));
    }
    running_json_ = h5::encode_running_state(rs);
  });
  const auto gathered = comm_->allgather_bytes(encode_decls(decls));
  agreed("save", [&] {
    check_running_state_agrees(*comm_, snapshot_->running);
    std::vector<std::vector<TensorDecl>> all;
    all.reserve(gathered.size());
    for (const auto& g : gathered) all.push_back(decode_decls(g));
    plan_ = make_write_plan(std::move(all), nodes_ > 0 ? Coverage::Partial : Coverage::Required);
    fault_point_of("plan");
  });
  name_ = checkpoint_file_name(snapshot_->running.epoch, snapshot_->running.global_step);
  final_path_ = root_ / name_;
  partial_ = final_path_.string() + ".partial";
  // Provenance is taken from rank 0 so that every rank writes the same attributes.
  provenance_ = host_name() + "\n" + iso_time_now();
  comm_->bcast_bytes(provenance_, 0);
}

// The file's size: every tensor's data, plus a generous estimate of HDF5's object headers
// and of the metadata datasets. Collective.
std::uint64_t SaveTransaction::file_size_estimate() const {
  std::uint64_t estimate = (1u << 20) + running_json_.size();
  for (const auto& t : plan_.tensors) {
    estimate += static_cast<std::uint64_t>(element_count(t.shape)) * dtype_size(t.dtype);
    estimate += 2048 + 2 * t.name.size();
    for (const auto& p : t.pieces) estimate += 160 + 20 * (p.bytes / kChecksumChunkBytes);
  }
  return estimate +
         static_cast<std::uint64_t>(comm_->allreduce_sum(static_cast<std::int64_t>(snapshot_->rank_blob.size())));
}

// Create: <name>.partial with one dataset per tensor, its space reserved before a byte is
// written, so that a full disk is one early, agreed error instead of a failure inside a
// collective HDF5 write or close.
void SaveTransaction::create() {
  const int rank = comm_->rank();
  partial_may_exist_ = true;
  agreed("save", [&] {
    fault_point_of("create");
    if (rank != 0) return;
    remove_file_if_exists(partial_);  // a stale one from a crashed save
    create_empty_file(partial_);      // a refusing folder reported with its errno
  });
  std::vector<h5::DatasetSpec> specs;
  specs.reserve(plan_.tensors.size());
  for (const auto& t : plan_.tensors) {
    const auto largest = std::max_element(t.pieces.begin(), t.pieces.end(),
                                          [](const auto& a, const auto& b) { return a.bytes < b.bytes; });
    specs.push_back({kGroupNames[t.group], t.name, t.dtype, t.shape, largest == t.pieces.end() ? 0 : largest->writer});
  }
  agreed("save: create " + partial_.string(), [&] {
    writer_ = std::make_unique<h5::ContainerWriter>(comm_->get(), partial_.string(), file_tuning(options_));
    writer_->create_datasets(specs);
  });
  // A node's part of a local checkpoint writes only the node's pieces of datasets that have
  // their global shapes: the rest stays a hole, which a reservation from the file's start
  // would fill. Its space is not reserved (a full local disk fails the write, agreed alike).
  const std::uint64_t estimate = nodes_ > 0 ? 0 : file_size_estimate();
  agreed("save: reserve space for " + partial_.string(), [&] {
    reserved_bytes_ = estimate;
    if (rank == 0) reserve_file_space(partial_, reserved_bytes_);
  });
  prepare_index();
}

// Everything in the index but the piece checksums is known once the file's places are: in a
// synchronous save rank 0 encodes it on another thread while the pieces are written (at
// 100,000 tensors that took 0.1-0.2 s of the save's critical path), and metadata() only
// writes the checksums into it.
void SaveTransaction::prepare_index() {
  const auto& blob = snapshot_->rank_blob;
  const auto blob_records =
      comm_->allgather_bytes(h5::encode_blob_record({blob.size(), xxh3_64(blob.data(), blob.size())}));
  agreed("save: write metadata of " + partial_.string(), [&] {
    rank_blobs_.clear();
    for (const auto& record : blob_records) rank_blobs_.push_back(h5::decode_blob_record(record));
    if (comm_->rank() != 0) return;
    std::vector<std::optional<std::uint64_t>> packed_offsets(plan_.tensors.size());
    for (std::size_t ti = 0; ti < plan_.tensors.size(); ++ti) packed_offsets[ti] = writer_->packed_offset(ti);
    h5::ContainerIndex head;  // all but the tensors, which the thread adds
    head.world_size = comm_->size();
    head.chunk_bytes = kChecksumChunkBytes;
    head.node = node_;
    head.nodes = nodes_;
    head.running_state = {running_json_.size(), xxh3_64(running_json_.data(), running_json_.size())};
    head.rank_blobs = rank_blobs_;
    // In a background save (save_async) the encoding runs at metadata() on the I/O thread
    // itself: a thread started from there slowed the caller's compute loop by a third in
    // the background-save benchmark (docs/PERFORMANCE.md, "Background saves"), and there
    // nobody waits for the save's critical path.
    const auto policy = in_background_ ? std::launch::deferred : std::launch::async;
    prepared_index_ = std::async(policy, [this, index = std::move(head), packed = std::move(packed_offsets)]() mutable {
      index.tensors.reserve(plan_.tensors.size());
      for (std::size_t ti = 0; ti < plan_.tensors.size(); ++ti) {
        const auto& t = plan_.tensors[ti];
        h5::IndexTensor it{kGroupNames[t.group], t.name, t.dtype, t.shape, {}, packed[ti]};
        it.pieces.reserve(t.pieces.size());
        for (const auto& p : t.pieces) {
          it.pieces.push_back({p.block, p.writer, 0, {}});
          it.pieces.back().chunks.assign(chunk_checksum_count(p.bytes, kChecksumChunkBytes), 0);
        }
        index.tensors.push_back(std::move(it));
      }
      PreparedIndex prepared;
      prepared.text = h5::encode_index(index, prepared.places);
      return prepared;
    });
  });
}

// Write: this rank's pieces (independent transfers), checksumming each.
void SaveTransaction::write() {
  agreed("save: write " + partial_.string(), [&] {
    fault_point_of("write");
    for_each_written_piece([&](std::size_t ti, std::size_t pi, const PlannedPiece& p) {
      const LocalTensor& lt = local_[p.writer_decl];
      const char* data = byte_pointer(lt, lt.segments[p.writer_segment]);
      writer_->write_block(ti, p.block, data);
      if (!checksummed_)
        h5::append_piece_checksums(my_checksums_, ti, pi, checksum_piece(data, p.bytes, kChecksumChunkBytes));
    });
    writer_->flush_blocks();
  });
}

// Metadata: the index (every piece's checksums, gathered from the writers), the running
// state and the rank blobs. Only rank 0 writes the index, so only rank 0 builds it; the
// others learn its size and checksum, which the collective calls need.
void SaveTransaction::metadata() {
  const int rank = comm_->rank();
  const std::string operation = "save: write metadata of " + partial_.string();
  const auto& blob = snapshot_->rank_blob;
  const auto checksum_tables = comm_->gather_bytes(my_checksums_, 0);
  std::vector<std::uint64_t> blob_offsets(1, 0);
  for (const auto& record : rank_blobs_) blob_offsets.push_back(blob_offsets.back() + record.bytes);
  std::string index_json;
  std::string index_summary;  // from rank 0: the index's size in bytes, a newline, its checksum
  agreed(operation, [&] {
    fault_point_of("metadata");
    if (rank != 0) return;
    PreparedIndex prepared = prepared_index_.get();
    h5::fill_piece_checksums(prepared.text, prepared.places, checksum_tables);
    index_json = std::move(prepared.text);
    index_summary = std::to_string(index_json.size()) + "\n" + to_hex64(xxh3_64(index_json.data(), index_json.size()));
  });
  comm_->bcast_bytes(index_summary, 0);
  const auto newline_at = index_summary.find('\n');
  const std::uint64_t index_bytes = std::stoull(index_summary.substr(0, newline_at));
  const std::string index_xxh3 = index_summary.substr(newline_at + 1);
  const RunningState& rs = snapshot_->running;
  agreed(operation, [&] {
    writer_->create_bytes_dataset(h5::kIndexDataset, index_bytes);
    writer_->create_bytes_dataset(h5::kRunningStateDataset, running_json_.size());
    writer_->create_bytes_dataset(h5::kRankBlobsDataset, blob_offsets.back());
    writer_->create_u64_dataset(h5::kRankBlobOffsetsDataset, blob_offsets.size());
    const auto newline = provenance_.find('\n');
    writer_->write_root_attributes({kVersion, provenance_.substr(newline + 1), provenance_.substr(0, newline),
                                    comm_->size(), rs.epoch, rs.step, rs.global_step, index_xxh3});
  });
  agreed(operation, [&] {
    if (rank == 0) {
      writer_->write_bytes(h5::kIndexDataset, 0, index_json.data(), index_json.size());
      writer_->write_bytes(h5::kRunningStateDataset, 0, running_json_.data(), running_json_.size());
      writer_->write_u64(h5::kRankBlobOffsetsDataset, blob_offsets);
    }
    writer_->write_bytes(h5::kRankBlobsDataset, blob_offsets[rank], blob.data(), blob.size());
  });
}

// Durable: close the file, then every rank that wrote data flushes its part of it.
void SaveTransaction::durable() {
  const int rank = comm_->rank();
  agreed("save: close " + partial_.string(), [&] {
    const std::unique_ptr<h5::ContainerWriter> writer = std::move(writer_);
    writer->close();
  });
  agreed("save: fsync " + partial_.string(), [&] {
    fault_point_of("after_writes");
    if (rank == 0) release_reserved_space(partial_, reserved_bytes_);
    if (rank == 0 || plan_.bytes_per_rank[rank] > 0 || !snapshot_->rank_blob.empty()) fsync_path(partial_);
  });
}

// Export at save time: written and renamed into place before the commit.
void SaveTransaction::export_group() {
  if (options_.export_safetensors.empty()) return;
  const RunningState& rs = snapshot_->running;
  // Its own agreement first: export_at_save is collective from its first line.
  agreed("save: export", [&] { fault_point_of("export"); });
  agreed("save: export", [&] {
    export_at_save(*comm_, partial_, options_.export_safetensors,
                   root_ / save_export_name(rs.epoch, rs.global_step, options_.export_safetensors),
                   options_.export_dtype);  // throws an error already agreed
  });
}

// Commit: once every rank agreed that it is ready, rank 0 renames the file into place and
// points `latest` at it.
void SaveTransaction::commit() {
  const int rank = comm_->rank();
  const std::string operation = "save: commit " + final_path_.string();
  agreed(operation, [&] { fault_point_of("commit"); });
  agreed(operation, [&] {
    if (rank != 0) return;
    rename_path(partial_, final_path_);
    fsync_directory(root_);
    fault_point_of("latest");
    atomic_write_file(root_ / "latest", name_ + "\n");
  });
  committed_ = true;
}

// Retain: prune old checkpoints (rank 0), only after the commit, and never fatal.
void SaveTransaction::retain() {
  try {
    fault_point_of("prune");
    if (comm_->rank() != 0) return;
    const auto victims = checkpoints_to_prune(root_, options_.keep_last, name_);
    for (const auto& victim : victims) {
      log_info("pruning ", victim.string(), " (keep_last=", options_.keep_last, ")");
      remove_file_if_exists(victim);
    }
    for (const auto& file : exports_to_remove(root_, victims)) {
      log_info("pruning ", file.string());
      remove_file_if_exists(file);
    }
    for (const auto& stale : stale_partials(root_)) {
      log_info("removing stale ", stale.string());
      remove_file_if_exists(stale);
    }
    fsync_directory(root_);
  } catch (const std::exception& e) {
    log_warn("retention after saving ", name_, " failed (the checkpoint is committed): ", e.what());
  }
}

std::filesystem::path SaveTransaction::finish() {
  std::uint64_t total_bytes = 0;
  for (auto b : plan_.bytes_per_rank) total_bytes += b;
  const double seconds = comm_->allreduce_max(seconds_since(start_));
  log_info("saved ", final_path_.string(), ": ", plan_.tensors.size(), " tensors, ", human_bytes(total_bytes), " in ",
           fixed(seconds, 3), " s (", fixed(seconds > 0 ? total_bytes / seconds / 1e9 : 0.0, 2), " GB/s)");
  return final_path_;
}

}  // namespace ckptio::detail
