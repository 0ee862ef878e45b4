#include <chrono>
#include <cstring>

#include "ckptio/error.hpp"
#include "ckptio/version.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "core/piece_checksum.hpp"
#include "core/piece_math.hpp"
#include "core/write_plan.hpp"
#include "h5/container_format.hpp"
#include "h5/container_writer.hpp"
#include "h5/index_codec.hpp"
#include "h5/library_lock.hpp"
#include "h5/running_state_codec.hpp"
#include "io/checkpoint_io_impl.hpp"
#include "io/file_tuning.hpp"
#include "io/fs_util.hpp"
#include "io/local_tensors.hpp"
#include "io/log_format.hpp"
#include "io/save_export.hpp"
#include "mpi/agree.hpp"

namespace fs = std::filesystem;

namespace ckptio {

using detail::agree_failure;
using detail::byte_pointer;
using detail::collect_local_tensors;
using detail::Comm;
using detail::Failure;
using detail::fixed;
using detail::human_bytes;
using detail::LocalTensor;
using detail::qualified;
using detail::run_agreed;
using detail::seconds_since;

namespace {

// The JSON fields of the running state, hashed separately so that a mismatch across
// ranks can name the field.
std::string running_state_fingerprint(const RunningState& s) {
  const std::string parts[] = {std::to_string(s.epoch), std::to_string(s.step), std::to_string(s.global_step),
                               s.lr_scheduler.dump(),   s.sampler.dump(),       s.extras.dump()};
  std::string out;
  for (const auto& p : parts) {
    const std::uint64_t h = detail::xxh3_64(p.data(), p.size());
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

fs::path CheckpointIO::Impl::save(const Snapshot& snapshot) {
  const std::lock_guard hdf5_lock(detail::h5::library_mutex());
  const auto start = std::chrono::steady_clock::now();
  const int rank = comm.rank();

  // 1. Plan: describe this rank's shards, gather every rank's, decide the writers.
  std::vector<LocalTensor> local;
  std::vector<detail::TensorDecl> decls;
  std::string running_json;
  run_agreed(comm, "save", [&] {
    const RunningState& rs = snapshot.running;
    if (rs.epoch < 0 || rs.step < 0 || rs.global_step < 0) throw UsageError("epoch, step and global_step must be >= 0");
    local = collect_local_tensors(snapshot, rank, "save:");
    for (const auto& t : local) {
      detail::TensorDecl d{t.group, *t.name, t.shard->dtype, t.shard->global_shape, {}};
      for (const auto& s : t.segments) d.segments.push_back(s.block);
      decls.push_back(std::move(d));
    }
    running_json = detail::h5::encode_running_state(rs);
  });
  const auto gathered = comm.allgather_bytes(detail::encode_decls(decls));
  detail::WritePlan plan;
  run_agreed(comm, "save", [&] {
    check_running_state_agrees(comm, snapshot.running);
    std::vector<std::vector<detail::TensorDecl>> all;
    all.reserve(gathered.size());
    for (const auto& g : gathered) all.push_back(detail::decode_decls(g));
    plan = detail::make_write_plan(all);
  });
  detail::fault_point("save.plan", rank);

  const std::string name = checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
  const fs::path final_path = root / name;
  const fs::path partial = final_path.string() + ".partial";
  // Provenance is taken from rank 0 so that every rank writes the same attributes.
  std::string provenance = detail::host_name() + "\n" + detail::iso_time_now();
  comm.bcast_bytes(provenance, 0);
  run_agreed(comm, "save", [&] {
    if (rank != 0) return;
    detail::remove_file_if_exists(partial);  // a stale one from a crashed save
    detail::create_empty_file(partial);      // a refusing folder reported with its errno
  });

  // 2. Create the container and its datasets (collective).
  std::optional<detail::h5::ContainerWriter> writer;
  std::vector<detail::h5::DatasetSpec> specs;
  for (const auto& t : plan.tensors) specs.push_back({kGroupNames[t.group], t.name, t.dtype, t.shape});
  auto abort_save = [&](const Failure& failure) {
    try {
      if (writer) writer->close();
    } catch (...) {
    }
    writer.reset();
    if (rank == 0) {
      try {
        detail::remove_file_if_exists(partial);
      } catch (...) {
      }
    }
    detail::log_warn("save of ", name, " failed; ", partial.filename().string(), " removed, `latest` unchanged");
    detail::rethrow(failure);
  };
  {
    std::optional<Failure> create_failure;
    try {
      writer.emplace(comm.get(), partial.string(), detail::file_tuning(options));
      writer->create_datasets(specs);
    } catch (...) {
      create_failure = detail::capture_current_exception();
    }
    if (auto f = agree_failure(comm, create_failure, "save: create " + partial.string())) abort_save(*f);
  }

  // Reserve the file's space before writing a byte, so that a full disk is one early,
  // agreed error instead of a failure inside a collective HDF5 write or close.
  // The file's size: every tensor's data, plus a generous estimate of HDF5's object headers
  // and of the metadata datasets.
  std::uint64_t file_estimate = (1u << 20) + running_json.size();
  for (const auto& t : plan.tensors) {
    file_estimate += static_cast<std::uint64_t>(detail::element_count(t.shape)) * dtype_size(t.dtype);
    file_estimate += 2048 + 2 * t.name.size();
    for (const auto& p : t.pieces) file_estimate += 160 + 20 * (p.bytes / detail::kChecksumChunkBytes);
  }
  file_estimate += static_cast<std::uint64_t>(comm.allreduce_sum(static_cast<std::int64_t>(snapshot.rank_blob.size())));
  std::uint64_t reserved = 0;
  {
    std::optional<Failure> reserve_failure;
    try {
      reserved = file_estimate;
      if (rank == 0) detail::reserve_file_space(partial, reserved);
    } catch (...) {
      reserve_failure = detail::capture_current_exception();
    }
    if (auto f = agree_failure(comm, reserve_failure, "save: reserve space for " + partial.string())) abort_save(*f);
  }

  // 3. Write this rank's pieces (independent transfers), checksumming each.
  std::string my_checksums;  // per piece, u64s: tensor, piece, xxh3, n, n chunk checksums
  std::optional<Failure> failure;
  try {
    detail::fault_point("save.write", rank);
    for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti) {
      const auto& t = plan.tensors[ti];
      for (std::size_t pi = 0; pi < t.pieces.size(); ++pi) {
        const auto& p = t.pieces[pi];
        if (p.writer != rank) continue;
        const LocalTensor& lt = local[p.writer_decl];
        const char* data = byte_pointer(lt, lt.segments[p.writer_segment]);
        writer->write_block(ti, p.block, data);
        const auto sums = detail::checksum_piece(data, p.bytes, detail::kChecksumChunkBytes);
        const std::uint64_t head[4] = {ti, pi, sums.whole, sums.chunks.size()};
        my_checksums.append(reinterpret_cast<const char*>(head), sizeof head);
        if (!sums.chunks.empty())
          my_checksums.append(reinterpret_cast<const char*>(sums.chunks.data()), sums.chunks.size() * 8);
      }
    }
    writer->flush_blocks();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: write " + partial.string())) abort_save(*f);

  // 4. Index, running state and rank blobs.
  detail::h5::ContainerIndex index;
  index.world_size = comm.size();
  for (const auto& t : plan.tensors) {
    detail::h5::IndexTensor it{kGroupNames[t.group], t.name, t.dtype, t.shape, {}};
    for (const auto& p : t.pieces) it.pieces.push_back({p.block, p.writer, 0, {}});
    index.tensors.push_back(std::move(it));
  }
  index.chunk_bytes = detail::kChecksumChunkBytes;
  for (const auto& bytes : comm.allgather_bytes(my_checksums)) {
    for (std::size_t off = 0; off + 32 <= bytes.size();) {
      std::uint64_t head[4];
      std::memcpy(head, bytes.data() + off, sizeof head);
      auto& piece = index.tensors[head[0]].pieces[head[1]];
      piece.xxh3 = head[2];
      piece.chunks.resize(head[3]);
      if (head[3]) std::memcpy(piece.chunks.data(), bytes.data() + off + 32, head[3] * 8);
      off += 32 + head[3] * 8;
    }
  }
  index.running_state = {running_json.size(), detail::xxh3_64(running_json.data(), running_json.size())};
  const auto& blob = snapshot.rank_blob;
  std::uint64_t my_blob_meta[2] = {blob.size(), detail::xxh3_64(blob.data(), blob.size())};
  std::vector<std::uint64_t> blob_offsets(1, 0);
  for (const auto& m : comm.allgather_bytes(std::string(reinterpret_cast<const char*>(my_blob_meta), 16))) {
    std::uint64_t meta[2];
    std::memcpy(meta, m.data(), 16);
    index.rank_blobs.push_back({meta[0], meta[1]});
    blob_offsets.push_back(blob_offsets.back() + meta[0]);
  }
  const std::string index_json = detail::h5::encode_index(index);

  namespace fmt = detail::h5;
  run_agreed(comm, "save: write metadata of " + partial.string(), [&] {
    writer->create_bytes_dataset(fmt::kIndexDataset, index_json.size());
    writer->create_bytes_dataset(fmt::kRunningStateDataset, running_json.size());
    writer->create_bytes_dataset(fmt::kRankBlobsDataset, blob_offsets.back());
    writer->create_u64_dataset(fmt::kRankBlobOffsetsDataset, blob_offsets.size());
    const auto newline = provenance.find('\n');
    writer->write_root_attributes({kVersion, provenance.substr(newline + 1), provenance.substr(0, newline), comm.size(),
                                   snapshot.running.epoch, snapshot.running.step, snapshot.running.global_step,
                                   detail::to_hex64(detail::xxh3_64(index_json.data(), index_json.size()))});
  });
  failure.reset();
  try {
    if (rank == 0) {
      writer->write_bytes(fmt::kIndexDataset, 0, index_json.data(), index_json.size());
      writer->write_bytes(fmt::kRunningStateDataset, 0, running_json.data(), running_json.size());
      writer->write_u64(fmt::kRankBlobOffsetsDataset, blob_offsets);
    }
    writer->write_bytes(fmt::kRankBlobsDataset, blob_offsets[rank], blob.data(), blob.size());
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: write metadata of " + partial.string())) abort_save(*f);

  failure.reset();
  try {
    writer->close();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  writer.reset();
  if (auto f = agree_failure(comm, failure, "save: close " + partial.string())) abort_save(*f);
  detail::fault_point("save.after_writes", rank);

  // 5. Durability: every rank that wrote data flushes its part of the file.
  failure.reset();
  try {
    if (rank == 0) detail::release_reserved_space(partial, reserved);
    if (rank == 0 || plan.bytes_per_rank[rank] > 0 || !blob.empty()) detail::fsync_path(partial);
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: fsync " + partial.string())) abort_save(*f);

  // 5b. Export at save time: written and renamed into place before the commit.
  if (!options.export_safetensors.empty()) {
    failure.reset();
    try {
      detail::export_at_save(comm, partial, options.export_safetensors,
                             root / detail::save_export_name(snapshot.running.epoch, snapshot.running.global_step,
                                                             options.export_safetensors),
                             options.export_dtype);
    } catch (...) {
      failure = detail::capture_current_exception();
    }
    if (failure) abort_save(*failure);  // export_safetensors already agreed on the failure
  }

  // 6. Commit: rename into place, then point `latest` at it.
  detail::fault_point("save.commit", rank);
  failure.reset();
  try {
    if (rank == 0) {
      detail::rename_path(partial, final_path);
      detail::fsync_directory(root);
      detail::fault_point("save.latest", rank);
      detail::atomic_write_file(root / "latest", name + "\n");
    }
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = agree_failure(comm, failure, "save: commit " + final_path.string())) {
    if (rank == 0) {
      try {
        detail::remove_file_if_exists(partial);
      } catch (...) {
      }
    }
    detail::rethrow(*f);
  }

  // 7. Retention: only after the commit, and never fatal.
  detail::fault_point("save.prune", rank);
  if (rank == 0) prune_and_clean(name);

  std::uint64_t total_bytes = 0;
  for (auto b : plan.bytes_per_rank) total_bytes += b;
  const double seconds = comm.allreduce_max(seconds_since(start));
  detail::log_info("saved ", final_path.string(), ": ", plan.tensors.size(), " tensors, ", human_bytes(total_bytes),
                   " in ", fixed(seconds, 3), " s (", fixed(seconds > 0 ? total_bytes / seconds / 1e9 : 0.0, 2),
                   " GB/s)");
  return final_path;
}

}  // namespace ckptio
