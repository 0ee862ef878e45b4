#include "io/multilevel.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/verify.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "h5/library_lock.hpp"
#include "io/fs_util.hpp"
#include "io/log_format.hpp"
#include "io/save_transaction.hpp"
#include "mpi/agree.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ckptio::detail {

namespace {

constexpr const char* kRecordFormat = "ckptio-local-level 1";
constexpr const char* kRecordSuffix = ".level";
constexpr std::size_t kMaxRecordBytes = 1 << 24;
constexpr std::int64_t kMaxChunkBytes = std::int64_t{16} << 20;

// The chunk size of a partner copy's stream of `bytes` (both sides compute it from the same
// total): at most kMaxChunkBytes, and at least two chunks when there is more than a page or
// two, so that the receiver's writes overlap the transfer and a crash can be injected
// between chunks (fault point local.partner.chunk) even in small tests.
std::int64_t chunk_bytes(std::int64_t bytes) {
  constexpr std::int64_t page = 4096;
  if (bytes <= 2 * page) return std::max<std::int64_t>(bytes, 1);
  const std::int64_t half = ((bytes + 1) / 2 + page - 1) / page * page;
  return std::min(kMaxChunkBytes, half);
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string substitute_job(std::string text, const std::string& job) {
  for (auto pos = text.find("%j"); pos != std::string::npos; pos = text.find("%j", pos + job.size()))
    text.replace(pos, 2, job);
  return text;
}

// Memory-backed storage gains nothing from O_DIRECT (its reads and writes are copies either
// way) and some kernels refuse it there: the node containers on tmpfs are read and written
// buffered, whatever CheckpointOptions::direct_io says for the shared root.
bool on_tmpfs(const fs::path& folder) {
  struct statfs st {};
  return ::statfs(folder.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
}

fs::path own_folder(const fs::path& local, int node) { return local / ("node" + std::to_string(node)); }
fs::path partner_folder(const fs::path& local, int node) { return local / "partner" / ("node" + std::to_string(node)); }

// The data extents of a file, [offset, offset + length) pairs in order: a node's container
// is sparse (the datasets have the global shapes, only the node's pieces are written), and
// only its data travels. Where the file system cannot tell holes, the whole file is data.
std::vector<std::int64_t> data_extents(int fd, std::int64_t size) {
  std::vector<std::int64_t> extents;
  std::int64_t at = 0;
  while (at < size) {
    const off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return {0, size};           // SEEK_DATA unsupported: send everything
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    extents.push_back(data);
    extents.push_back(std::min<std::int64_t>(hole, size) - data);
    at = hole;
  }
  return extents;
}

// Sends the file `send` (empty: nothing) to `dest` and receives a file from `src` into
// `receive` at the same time (MPI_PROC_NULL for either side: none): its size and data extents
// first, then the data in chunks; the received file is written as receive.partial (holes
// kept), fsynced and renamed. A failure on either side is returned after the exchange has
// run to its end, so that the peer never waits for ever.
// `faults`: a save's partner copy fires the fault points local.partner.send (before the
// first chunk leaves), local.partner.chunk (the first chunk sent and received, the rest not:
// a copy half sent and half written) and local.partner.receive (the copy written, not yet
// renamed) as
// `fault_rank`; a restart's exchange fires none.
enum class ExchangeFaults { None, PartnerCopy };
std::optional<Failure> exchange_file(const Comm& comm, int dest, const fs::path& send, int src, const fs::path& receive,
                                     ExchangeFaults faults = ExchangeFaults::None, int fault_rank = -1) {
  std::optional<Failure> failure;
  auto fail = [&](const std::string& message) {
    if (!failure) failure = Failure{ErrorKind::Io, message};
  };
  // An injected `throw` becomes this side's failure: the exchange still runs to its end.
  const auto fault_point = [&](std::string_view point) {
    if (faults != ExchangeFaults::PartnerCopy) return;
    try {
      save_fault_point(point, fault_rank);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  };
  const auto start = std::chrono::steady_clock::now();
  // 1. Sizes: {file size (-1: cannot read it), extent count}.
  int in = -1;
  std::int64_t send_header[2] = {-1, 0};
  std::vector<std::int64_t> send_extents;
  if (dest != MPI_PROC_NULL) {
    in = ::open(send.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (in < 0 || ::fstat(in, &st) != 0) {
      fail("cannot read " + send.string() + " for its partner copy: " + std::strerror(errno));
    } else {
      send_extents = data_extents(in, st.st_size);
      send_header[0] = st.st_size;
      send_header[1] = static_cast<std::int64_t>(send_extents.size() / 2);
    }
  }
  std::int64_t receive_header[2] = {0, 0};
  check_mpi(MPI_Sendrecv(send_header, 2, MPI_INT64_T, dest, 0, receive_header, 2, MPI_INT64_T, src, 0, comm.get(),
                         MPI_STATUS_IGNORE),
            "partner copy: MPI_Sendrecv");
  std::vector<std::int64_t> receive_extents(src != MPI_PROC_NULL ? 2 * std::max<std::int64_t>(receive_header[1], 0)
                                                                 : 0);
  check_mpi(MPI_Sendrecv(send_extents.data(), static_cast<int>(send_extents.size()), MPI_INT64_T, dest, 2,
                         receive_extents.data(), static_cast<int>(receive_extents.size()), MPI_INT64_T, src, 2,
                         comm.get(), MPI_STATUS_IGNORE),
            "partner copy: MPI_Sendrecv");
  const fs::path partial = receive.string() + ".partial";
  int out = -1;
  if (src != MPI_PROC_NULL) {
    if (receive_header[0] < 0) fail("the node sending " + receive.filename().string() + " could not read it");
    std::error_code ec;
    fs::create_directories(receive.parent_path(), ec);
    out = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || ::ftruncate(out, std::max<std::int64_t>(receive_header[0], 0)) != 0)
      fail("cannot create " + partial.string() + ": " + std::strerror(errno));
  }
  // 2. The data of the extents, as one stream cut into chunks, pipelined: two buffers per
  // direction, every receive posted before it is needed, so that reading chunk c+1 overlaps
  // sending chunk c and writing chunk c overlaps receiving chunk c+1; no round trip per chunk.
  const auto total = [](const std::vector<std::int64_t>& extents) {
    std::int64_t bytes = 0;
    for (std::size_t i = 1; i < extents.size(); i += 2) bytes += extents[i];
    return bytes;
  };
  const std::int64_t send_bytes = total(send_extents);
  const std::int64_t receive_bytes = total(receive_extents);
  const std::int64_t send_chunk = chunk_bytes(send_bytes);
  const std::int64_t receive_chunk = chunk_bytes(receive_bytes);
  const auto chunks = [](std::int64_t size, std::int64_t chunk) {
    return size <= 0 ? std::int64_t{0} : (size + chunk - 1) / chunk;
  };
  const std::int64_t send_chunks = chunks(send_bytes, send_chunk);
  const std::int64_t receive_chunks = chunks(receive_bytes, receive_chunk);
  // Two buffers per direction of the chunk size, left uninitialised.
  const auto buffer = [](std::int64_t chunks, std::int64_t chunk) {
    return std::unique_ptr<char[]>(
        chunks ? new char[static_cast<std::size_t>(std::min<std::int64_t>(chunks, 2) * chunk)] : nullptr);
  };
  const std::unique_ptr<char[]> outgoing = buffer(send_chunks, send_chunk);
  const std::unique_ptr<char[]> incoming = buffer(receive_chunks, receive_chunk);
  // Copies `count` bytes between a buffer and the file at stream position `position` through
  // the extents (pread when reading, pwrite when writing); false on an I/O error.
  const auto transfer = [](int fd, const std::vector<std::int64_t>& extents, std::int64_t position, char* data,
                           std::int64_t count, bool writing) {
    std::int64_t stream = 0;
    for (std::size_t i = 0; i + 1 < extents.size() && count > 0; i += 2) {
      const std::int64_t length = extents[i + 1];
      if (position >= stream + length) {
        stream += length;
        continue;
      }
      const std::int64_t skip = position - stream;
      const std::int64_t n = std::min(count, length - skip);
      for (std::int64_t done = 0; done < n;) {
        const off_t at = static_cast<off_t>(extents[i] + skip + done);
        const ssize_t r = writing ? ::pwrite(fd, data + done, static_cast<std::size_t>(n - done), at)
                                  : ::pread(fd, data + done, static_cast<std::size_t>(n - done), at);
        if (r <= 0) return false;
        done += r;
      }
      data += n;
      position += n;
      count -= n;
      stream += length;
    }
    return count == 0;
  };
  const auto count_of = [](std::int64_t c, std::int64_t chunk, std::int64_t bytes) {
    return static_cast<int>(std::min(chunk, bytes - c * chunk));
  };
  MPI_Request sends[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  MPI_Request receives[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  double read_seconds = 0;
  double write_seconds = 0;
  double wait_seconds = 0;
  const auto post_receive = [&](std::int64_t c) {
    check_mpi(MPI_Irecv(incoming.get() + (c % 2) * receive_chunk, count_of(c, receive_chunk, receive_bytes), MPI_BYTE,
                        src, 1, comm.get(), &receives[c % 2]),
              "partner copy: MPI_Irecv");
  };
  const auto wait = [&](MPI_Request& request) {
    const auto at = std::chrono::steady_clock::now();
    check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), "partner copy: MPI_Wait");
    wait_seconds += seconds_since(at);
  };
  for (std::int64_t c = 0; c < std::min<std::int64_t>(receive_chunks, 2); ++c) post_receive(c);
  for (std::int64_t c = 0; c < std::max(send_chunks, receive_chunks); ++c) {
    if (c < send_chunks) {
      if (c == 0) fault_point("local.partner.send");
      wait(sends[c % 2]);  // chunk c-2 has left this buffer
      char* data = outgoing.get() + (c % 2) * send_chunk;
      const int count = count_of(c, send_chunk, send_bytes);
      const auto at = std::chrono::steady_clock::now();
      if (!transfer(in, send_extents, c * send_chunk, data, count, false))
        fail("cannot read " + send.string() + " for its partner copy");
      read_seconds += seconds_since(at);
      check_mpi(MPI_Isend(data, count, MPI_BYTE, dest, 1, comm.get(), &sends[c % 2]), "partner copy: MPI_Isend");
    }
    if (c < receive_chunks) {
      wait(receives[c % 2]);
      const auto at = std::chrono::steady_clock::now();
      if (out >= 0 && !transfer(out, receive_extents, c * receive_chunk, incoming.get() + (c % 2) * receive_chunk,
                                count_of(c, receive_chunk, receive_bytes), true))
        fail("cannot write " + partial.string());
      write_seconds += seconds_since(at);
      if (c + 2 < receive_chunks) post_receive(c + 2);
    }
    // Killed here, a copy is half sent and half written (when there is more than one chunk).
    if (c == 0) {
      if (c < send_chunks) wait(sends[0]);
      fault_point("local.partner.chunk");
    }
  }
  for (auto& request : sends) wait(request);
  if (in >= 0) ::close(in);
  if (src != MPI_PROC_NULL) {
    fault_point("local.partner.receive");
    if (out >= 0 && ::fsync(out) != 0) fail("cannot write " + partial.string() + ": " + std::strerror(errno));
    if (out >= 0) ::close(out);
    if (!failure) {
      try {
        rename_path(partial, receive);
        fsync_directory(receive.parent_path());
      } catch (const std::exception& e) {
        fail(e.what());
      }
    } else {
      std::error_code ec;
      fs::remove(partial, ec);
    }
  }
  log_debug("partner copy: sent ", human_bytes(static_cast<double>(send_bytes)), " of data, received ",
            human_bytes(static_cast<double>(receive_bytes)), " in ", fixed(seconds_since(start), 3), " s (reading ",
            fixed(read_seconds, 3), " s, writing ", fixed(write_seconds, 3), " s, waiting for MPI ",
            fixed(wait_seconds, 3), " s)");
  return failure;
}

// Removes the commit record of `container`, if any, durably (before the container is replaced).
void remove_record(const fs::path& container) {
  const fs::path record = container.string() + kRecordSuffix;
  std::error_code ec;
  if (fs::remove(record, ec)) fsync_directory(container.parent_path());
  if (ec) throw IoError("cannot remove " + record.string() + ": " + ec.message());
}

}  // namespace

std::int64_t global_step_of(const std::string& name) {
  const auto at = name.find("-global_step");
  if (name.rfind("epoch", 0) != 0 || at == std::string::npos || name.size() < 3 ||
      name.compare(name.size() - 3, 3, ".h5") != 0)
    return -1;
  const std::string digits = name.substr(at + 12, name.size() - 3 - at - 12);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return -1;
  return std::stoll(digits);
}

struct LocalLevel::Copy {
  int node = 0;    // whose pieces (the saving node)
  int holder = 0;  // the node whose storage has it now
  std::int64_t global_step = 0;
  fs::path file;
  std::string record;  // the commit record's text
};

LocalLevel::LocalLevel(const Comm& world, const CheckpointOptions& options) : world_(world) {
  job_ = env_or("SLURM_JOB_ID", "nojob");
  partner_copies_ = options.partner_copies;
  keep_last_ = options.local_keep_last;
  // Testing only: CKPTIO_TEST_RANKS_PER_NODE=k makes nodes of k consecutive ranks, each with
  // a local folder of its own, so that the node-local level can be tested on one host.
  const int simulated = std::atoi(env_or("CKPTIO_TEST_RANKS_PER_NODE", "0").c_str());
  MPI_Comm split = MPI_COMM_NULL;
  if (simulated > 0)
    check_mpi(MPI_Comm_split(world.get(), world.rank() / simulated, world.rank(), &split), "MPI_Comm_split");
  else
    check_mpi(MPI_Comm_split_type(world.get(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &split),
              "MPI_Comm_split_type");
  node_comm_ = Comm(split);
  MPI_Comm_free(&split);
  MPI_Comm leaders = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(world.get(), node_comm_.rank() == 0 ? 0 : MPI_UNDEFINED, world.rank(), &leaders),
            "MPI_Comm_split");
  int index = 0;
  int count = 0;
  if (leaders != MPI_COMM_NULL) {
    leaders_ = Comm(leaders);
    MPI_Comm_free(&leaders);
    index = leaders_.rank();
    count = leaders_.size();
  }
  check_mpi(MPI_Bcast(&index, 1, MPI_INT, 0, node_comm_.get()), "MPI_Bcast");
  check_mpi(MPI_Bcast(&count, 1, MPI_INT, 0, node_comm_.get()), "MPI_Bcast");
  node_ = index;
  nodes_ = count;
  for (auto n : world.allgather_u64(static_cast<std::uint64_t>(node_))) rank_nodes_.push_back(static_cast<int>(n));
  // Node numbers follow the lowest rank of each node; logs also name the host, which users know.
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const auto hosts = world.allgather_bytes(host);
  node_hosts_.assign(nodes_, std::string());
  for (int r = world.size() - 1; r >= 0; --r) node_hosts_[rank_nodes_[r]] = hosts[r];
  folder_ = fs::absolute(substitute_job(options.local_dir.string(), job_)).lexically_normal();
  if (simulated > 0) folder_ /= "simulated-node" + std::to_string(node_);
  run_agreed(world, "open local checkpoint folder", [&] {
    if (options.flush_every < 1) throw UsageError("flush_every must be >= 1");
    if (options.partner_copies < 0) throw UsageError("partner_copies must be >= 0");
    if (options.local_keep_last < 1) throw UsageError("local_keep_last must be >= 1");
    if (node_comm_.rank() != 0) return;
    std::error_code ec;
    fs::create_directories(own_folder(folder_, node_), ec);
    if (ec) throw IoError("cannot create local checkpoint folder " + folder_.string() + ": " + ec.message());
  });
  if (partner_copies_ >= nodes_ && nodes_ > 1)
    log_warn("partner_copies ", partner_copies_, " on ", nodes_, " nodes: each node's copy goes to all ", nodes_ - 1,
             " others");
  if (on_tmpfs(folder_)) buffered_ = true;
  CheckpointOptions node_options;
  node_options.lock_root = false;
  if (buffered_) node_options.direct_io = false;
  node_io_ = std::make_unique<CheckpointIO>(node_comm_.get(), own_folder(folder_, node_), node_options);
  log_info("node-local level in ", folder_.string(), " on ", nodes_, " node(s), ", partner_copies_, " partner cop",
           partner_copies_ == 1 ? "y" : "ies", ", flush to the root every ", options.flush_every, " save(s)");
}

LocalLevel::~LocalLevel() = default;

std::string LocalLevel::node_name(int node) const {
  return "node " + std::to_string(node) + " (host " + node_hosts_[node] + ")";
}

void LocalLevel::save(const Snapshot& snapshot, const CheckpointOptions& options, const Comm& world) {
  const auto start = std::chrono::steady_clock::now();
  const int rank = world.rank();
  const fs::path own = own_folder(folder_, node_);
  const std::string name = checkpoint_file_name(snapshot.running.epoch, snapshot.running.global_step);
  const int copies = std::min(partner_copies_, nodes_ - 1);
  std::vector<int> sources;  // the nodes whose containers this node receives
  for (int j = 1; j <= copies; ++j) sources.push_back((node_ - j + nodes_) % nodes_);
  // 0. A record of the same step from an earlier save (a job that died, then resumed from an
  // older checkpoint) must not vouch for the containers this save is about to replace.
  run_agreed(world, "local save: forget step " + name, [&] {
    if (node_comm_.rank() != 0) return;
    remove_record(own / name);
    for (int src : sources) remove_record(partner_folder(folder_, src) / name);
  });
  // 1. This node's pieces, a container saved over the node's ranks.
  std::optional<Failure> failure;
  try {
    CheckpointOptions node_options = options;
    node_options.keep_last = 0;  // pruned below, with the commit records
    node_options.export_safetensors.clear();
    node_options.local_dir.clear();
    if (buffered_) node_options.direct_io = false;
    const std::lock_guard hdf5_lock(h5::library_mutex());
    SaveTransaction transaction(node_comm_, own, node_options, snapshot);
    transaction.save_node_part(node_, nodes_, rank);
    transaction.run();
  } catch (...) {
    failure = capture_current_exception();
  }
  agree(world, failure, "local save");
  // 2. Partner copies: node N sends its container to N+1, ..., N+k (mod the node count).
  run_agreed(world, "local save: partner copy", [&] {
    // Every leader takes part in every exchange, so the fault point (a failed copy) comes after.
    if (node_comm_.rank() != 0) return save_fault_point("local.partner", rank);
    std::optional<Failure> copy_failure;
    for (int j = 1; j <= copies; ++j) {
      const int dest = (node_ + j) % nodes_;
      const int src = sources[j - 1];
      auto f = exchange_file(leaders_, dest, own / name, src, partner_folder(folder_, src) / name,
                             ExchangeFaults::PartnerCopy, rank);
      if (f && !copy_failure) copy_failure = f;
    }
    save_fault_point("local.partner", rank);
    if (copy_failure) throw IoError(copy_failure->message);
  });
  // 3. Commit: every node and every copy succeeded; each node records what it holds.
  json record{{"format", kRecordFormat},         {"job", job_},
              {"rank_nodes", rank_nodes_},       {"global_step", snapshot.running.global_step},
              {"epoch", snapshot.running.epoch}, {"file", name}};
  // The agreement above is the commit point: the checkpoint is complete on every node. A
  // record that cannot be written only makes that copy not count (a warning, not a failed
  // save), as a retention failure never fails a committed shared save.
  if (node_comm_.rank() == 0) {
    try {
      save_fault_point("local.commit", rank);
      record["node"] = node_;
      atomic_write_file(own / (name + kRecordSuffix), record.dump());
      save_fault_point("local.records", rank);
      for (int src : sources) {
        record["node"] = src;
        atomic_write_file(partner_folder(folder_, src) / (name + kRecordSuffix), record.dump());
      }
    } catch (const std::exception& e) {
      log_line(LogLevel::Warn, std::string("local save: cannot record ") + name + ": " + e.what(), true);
    }
  }
  run_agreed(world, "local save: prune", [&] {
    if (node_comm_.rank() != 0) return;
    save_fault_point("local.prune", rank);
    prune();
  });
  const double seconds = world.allreduce_max(seconds_since(start));
  log_info("saved local checkpoint ", name, " on ", nodes_, " node(s) with ", copies, " partner cop",
           copies == 1 ? "y" : "ies", " in ", fixed(seconds, 3), " s");
}

void LocalLevel::flushed(std::int64_t global_step, bool prune_now) {
  flushed_step_ = std::max(flushed_step_, global_step);
  if (!prune_now) return;
  run_agreed(world_, "local level: prune after the flush of global_step " + std::to_string(global_step), [&] {
    if (node_comm_.rank() == 0) prune();
  });
}

// This node's copies with a commit record of this job and layout (leaders only).
std::vector<LocalLevel::Copy> LocalLevel::scan_copies() {
  std::vector<Copy> found;
  std::vector<fs::path> folders;
  std::error_code ec;
  for (const fs::path& base : {folder_, folder_ / "partner"}) {
    for (const auto& entry : fs::directory_iterator(base, ec))
      if (entry.is_directory() && entry.path().filename().string().rfind("node", 0) == 0)
        folders.push_back(entry.path());
  }
  for (const auto& folder : folders) {
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string file_name = entry.path().filename().string();
      if (file_name.size() < 7 || file_name.compare(file_name.size() - 6, 6, kRecordSuffix) != 0) continue;
      Copy copy;
      copy.holder = node_;
      try {
        const auto text = read_small_file(entry.path(), kMaxRecordBytes, "local checkpoint record");
        if (!text) continue;
        const json r = json::parse(*text);
        if (r.value("format", "") != kRecordFormat) throw FormatError("unknown format");
        if (r.at("job").get<std::string>() != job_) {
          log_line(LogLevel::Warn,
                   "ignoring local checkpoint " + entry.path().string() + ": it belongs to job " +
                       r.at("job").get<std::string>() + ", not " + job_,
                   true);
          continue;
        }
        if (r.at("rank_nodes").get<std::vector<int>>() != rank_nodes_) {
          log_line(
              LogLevel::Warn,
              "ignoring local checkpoint " + entry.path().string() + ": saved with another layout of ranks on nodes",
              true);
          continue;
        }
        copy.node = r.at("node").get<int>();
        copy.global_step = r.at("global_step").get<std::int64_t>();
        copy.file = folder / r.at("file").get<std::string>();
        copy.record = *text;
      } catch (const std::exception& e) {
        log_line(LogLevel::Warn, "ignoring local checkpoint record " + entry.path().string() + ": " + e.what(), true);
        continue;
      }
      if (copy.node < 0 || copy.node >= nodes_ || !fs::is_regular_file(copy.file, ec)) continue;
      found.push_back(std::move(copy));
    }
  }
  return found;
}

// Keeps, in each folder of this node (own and partner copies), the newest keep_last
// committed steps that are not older than the newest flush to the shared root (restart never
// prefers an older local checkpoint to it); removes the other committed copies, any
// uncommitted container older than the newest committed one, and stale `.partial` copies.
void LocalLevel::prune() {
  std::map<fs::path, std::set<std::int64_t>> committed;
  for (const auto& c : scan_copies()) committed[c.file.parent_path()].insert(c.global_step);
  for (const auto& [folder, steps] : committed) {
    std::set<std::int64_t> keep;
    for (auto it = steps.rbegin(); it != steps.rend() && static_cast<int>(keep.size()) < keep_last_; ++it)
      if (*it >= flushed_step_) keep.insert(*it);
    const std::int64_t newest = *steps.rbegin();
    std::error_code ec;
    std::vector<fs::path> remove;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      std::string n = entry.path().filename().string();
      const bool is_record = n.size() > 6 && n.compare(n.size() - 6, 6, kRecordSuffix) == 0;
      const bool is_partial = n.size() > 8 && n.compare(n.size() - 8, 8, ".partial") == 0;
      if (is_record) n.resize(n.size() - 6);
      if (is_partial) n.resize(n.size() - 8);
      const std::int64_t step = global_step_of(n);
      if (step < 0 || (keep.count(step) && !is_partial)) continue;
      if (steps.count(step) || step < newest) remove.push_back(entry.path());
    }
    // Records first, so that a record never names a removed container.
    std::sort(remove.begin(), remove.end(), [](const fs::path& a, const fs::path& b) {
      return (a.extension() == kRecordSuffix) > (b.extension() == kRecordSuffix);
    });
    for (const auto& p : remove) {
      if (p.extension() != kRecordSuffix && p.extension() != ".partial")
        log_debug("pruning local checkpoint ", p.string());
      fs::remove(p, ec);
    }
  }
}

std::optional<LoadResult> LocalLevel::load_latest(const Snapshot& targets, const LoadOptions& options,
                                                  std::int64_t shared_step) {
  flushed_step_ = std::max(flushed_step_, shared_step);
  // What each node holds, known to every rank.
  std::string mine;
  run_agreed(world_, "load_latest: scan the local level", [&] {
    if (node_comm_.rank() != 0) return;
    json list = json::array();
    for (const auto& c : scan_copies())
      list.push_back({{"node", c.node}, {"step", c.global_step}, {"file", c.file.string()}, {"record", c.record}});
    mine = list.dump();
  });
  std::vector<Copy> copies;
  const auto gathered = world_.allgather_bytes(mine);
  for (int r = 0; r < world_.size(); ++r) {
    if (gathered[r].empty()) continue;
    for (const auto& j : json::parse(gathered[r]))
      copies.push_back({j["node"].get<int>(), rank_nodes_[r], j["step"].get<std::int64_t>(),
                        j["file"].get<std::string>(), j["record"].get<std::string>()});
  }
  // Steps for which every node's container is held somewhere, newest first.
  std::map<std::int64_t, std::vector<std::vector<const Copy*>>, std::greater<>> by_step;
  for (const auto& c : copies) {
    auto& per_node = by_step[c.global_step];
    per_node.resize(nodes_);
    per_node[c.node].push_back(&c);
  }
  for (const auto& [step, per_node] : by_step) {
    if (step < shared_step) {
      log_info("load_latest: the shared root's global_step ", shared_step,
               " is newer than every complete local checkpoint: using the shared root");
      return std::nullopt;
    }
    int missing = -1;
    for (int n = 0; n < nodes_ && missing < 0; ++n)
      if (per_node[n].empty()) missing = n;
    if (missing >= 0) {
      log_warn("load_latest: local checkpoint global_step ", step, " is incomplete: the pieces of ", node_name(missing),
               " are on no node of this allocation (own copy and partner copies lost)");
      continue;
    }
    const auto restored = [&](LoadResult result, const std::string& moved) {
      result.level = "local";
      result.saved_world_size = world_.size();
      log_info("load_latest: restored local checkpoint global_step ", step, " from ", nodes_, " node(s)",
               moved.empty() ? std::string(", each its own copy") : "; partner copies used: " + moved,
               shared_step >= 0 ? " (the shared root's newest is global_step " + std::to_string(shared_step) + ")"
                                : std::string());
      return result;
    };
    // Where every node holds its own copy (the usual restart), each node loads it directly:
    // the load verifies the checksum of everything it reads, so the copy is read once. Only
    // when that fails somewhere are the copies verified whole and partner copies considered.
    const auto own_copy = [&](int n) -> const Copy* {
      for (const Copy* c : per_node[n])
        if (c->holder == n) return c;
      return nullptr;
    };
    bool every_own_copy = options.verify;
    for (int n = 0; n < nodes_ && every_own_copy; ++n) every_own_copy = own_copy(n) != nullptr;
    if (every_own_copy) {
      std::optional<LoadResult> result;
      std::optional<Failure> failure;
      try {
        result = node_io_->load(own_copy(node_)->file, targets, options);
      } catch (...) {
        failure = capture_current_exception();
      }
      const auto agreed = agree_failure(world_, failure, "load_latest: local checkpoint");
      if (!agreed) return restored(std::move(*result), "");
      log_warn("load_latest: local checkpoint global_step ", step, ": ", agreed->message,
               "; verifying every copy of it");
    }
    // Verify copies where they lie and pick a good one per node: each node's own copy first;
    // partner copies are read only for the nodes whose own copy is missing or damaged.
    std::vector<const Copy*> chosen(nodes_, nullptr);
    std::map<int, int> leader_of_node;
    for (int r = 0; r < world_.size(); ++r)
      if (!leader_of_node.count(rank_nodes_[r])) leader_of_node[rank_nodes_[r]] = r;
    for (const bool own_copies : {true, false}) {
      const std::vector<const Copy*> chosen_before = chosen;  // the same on every rank
      const auto in_round = [&](const Copy* c, int n) {
        return own_copies ? c->holder == n : c->holder != n && !chosen_before[n];
      };
      if (!own_copies && std::find(chosen.begin(), chosen.end(), nullptr) == chosen.end()) break;
      std::string verdicts;
      run_agreed(world_, "load_latest: verify local copies", [&] {
        if (node_comm_.rank() != 0) return;
        for (int n = 0; n < nodes_; ++n)
          for (const Copy* c : per_node[n]) {
            if (c->holder != node_ || !in_round(c, n)) continue;
            const VerifyReport report = verify_container(MPI_COMM_SELF, c->file);
            if (!report.ok())
              log_line(LogLevel::Warn,
                       "load_latest: skipping local copy " + c->file.string() + ": " + report.problems.front(), true);
            verdicts += report.ok() ? '1' : '0';
          }
      });
      const auto all_verdicts = world_.allgather_bytes(verdicts);
      std::map<int, std::size_t> next_verdict;  // per holder node
      for (int n = 0; n < nodes_; ++n)
        for (const Copy* c : per_node[n]) {
          if (!in_round(c, n)) continue;
          const bool good = all_verdicts[leader_of_node[c->holder]][next_verdict[c->holder]++] == '1';
          if (good && !chosen[n]) chosen[n] = c;
        }
    }
    int unverified = -1;
    for (int n = 0; n < nodes_ && unverified < 0; ++n)
      if (!chosen[n]) unverified = n;
    if (unverified >= 0) {
      log_warn("load_latest: local checkpoint global_step ", step, ": no copy of the pieces of ", node_name(unverified),
               " passes verification");
      continue;
    }
    // Copies a node lacks travel from the node that holds one, in node order.
    std::string moved;
    const fs::path own = own_folder(folder_, node_);
    run_agreed(world_, "load_latest: send local copies", [&] {
      if (node_comm_.rank() != 0) return;
      for (int n = 0; n < nodes_; ++n) {
        const Copy* c = chosen[n];
        if (c->holder == n) continue;
        moved += (moved.empty() ? "" : ", ") + node_name(n) + " from " + node_name(c->holder);
        if (node_ != n && node_ != c->holder) continue;
        const bool sending = node_ == c->holder;
        const fs::path target = own / c->file.filename();
        auto f =
            exchange_file(leaders_, sending ? n : MPI_PROC_NULL, c->file, sending ? MPI_PROC_NULL : c->holder, target);
        if (f) throw IoError(f->message);
        if (!sending) atomic_write_file(target.string() + kRecordSuffix, c->record);
      }
    });
    std::optional<LoadResult> result;
    std::optional<Failure> failure;
    try {
      // A copy this node holds itself is read where it lies: its own container, or a partner
      // copy (a requeued job may give this node another index than the job that saved it).
      const Copy* mine_chosen = chosen[node_];
      result = node_io_->load(mine_chosen->holder == node_ ? mine_chosen->file : own / mine_chosen->file.filename(),
                              targets, options);
    } catch (...) {
      failure = capture_current_exception();
    }
    if (auto agreed = agree_failure(world_, failure, "load_latest: local checkpoint")) {
      log_warn("load_latest: cannot restore local checkpoint global_step ", step, ": ", agreed->message);
      continue;
    }
    return restored(std::move(*result), moved);
  }
  if (!by_step.empty() || shared_step >= 0)
    log_info("load_latest: no complete local checkpoint on the nodes of this allocation: using the shared root");
  return std::nullopt;
}

}  // namespace ckptio::detail

namespace ckptio {

namespace {

// The copies in one node's local level `level` (a folder holding node{N}/ and partner/node{M}/).
void list_level(const fs::path& level, const std::string& holder, std::vector<LocalCheckpointEntry>& out) {
  std::error_code ec;
  std::vector<std::pair<fs::path, bool>> folders;  // (folder, holds partner copies)
  for (const auto& [base, partner] : {std::pair{level, false}, std::pair{level / "partner", true}})
    for (const auto& entry : fs::directory_iterator(base, ec))
      if (entry.is_directory(ec) && entry.path().filename().string().rfind("node", 0) == 0)
        folders.emplace_back(entry.path(), partner);
  for (const auto& [folder, partner] : folders) {
    const std::string node_digits = folder.filename().string().substr(4);
    if (node_digits.empty() || node_digits.size() > 6 ||
        node_digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      const std::int64_t step = detail::global_step_of(name);
      if (step < 0 || !entry.is_regular_file(ec)) continue;
      LocalCheckpointEntry e;
      e.path = entry.path();
      e.name = name;
      e.epoch = std::stoll(name.substr(5, name.find('-') - 5));
      e.global_step = step;
      e.holder = holder;
      e.node = std::stoi(node_digits);
      e.partner_copy = partner;
      struct stat st {};
      if (::stat(e.path.c_str(), &st) == 0) {
        e.file_bytes = static_cast<std::uint64_t>(st.st_size);
        e.modified = detail::iso_time(st.st_mtime);
      }
      try {
        const auto text = detail::read_small_file(e.path.string() + detail::kRecordSuffix, detail::kMaxRecordBytes,
                                                  "local checkpoint record");
        if (text) {
          const json r = json::parse(*text);
          const auto rank_nodes = r.at("rank_nodes").get<std::vector<int>>();
          if (r.value("format", "") == detail::kRecordFormat && r.at("file").get<std::string>() == name &&
              r.at("node").get<int>() == e.node && r.at("global_step").get<std::int64_t>() == step) {
            e.committed = true;
            e.job = r.at("job").get<std::string>();
            e.nodes = rank_nodes.empty() ? 0 : *std::max_element(rank_nodes.begin(), rank_nodes.end()) + 1;
          }
        }
      } catch (const std::exception&) {
        // An unreadable or foreign record: the copy is listed as not committed.
      }
      out.push_back(std::move(e));
    }
  }
}

bool holds_a_level(const fs::path& folder) {
  std::error_code ec;
  if (fs::is_directory(folder / "partner", ec)) return true;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.is_directory(ec) && entry.path().filename().string().rfind("node", 0) == 0) return true;
  return false;
}

}  // namespace

std::vector<LocalCheckpointEntry> list_local_checkpoints(const fs::path& local_dir) {
  std::error_code ec;
  if (!fs::is_directory(local_dir, ec)) throw IoError("no such local checkpoint folder: " + local_dir.string());
  std::vector<LocalCheckpointEntry> out;
  list_level(local_dir, "", out);
  std::vector<fs::path> subfolders;
  for (const auto& entry : fs::directory_iterator(local_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory(ec) && name != "partner" && name.rfind("node", 0) != 0 && holds_a_level(entry.path()))
      subfolders.push_back(entry.path());
  }
  if (ec) throw IoError("cannot read local checkpoint folder " + local_dir.string() + ": " + ec.message());
  for (const auto& folder : subfolders) list_level(folder, folder.filename().string(), out);
  std::sort(out.begin(), out.end(), [](const LocalCheckpointEntry& a, const LocalCheckpointEntry& b) {
    return std::tie(a.global_step, a.epoch, a.node, a.partner_copy, a.holder) <
           std::tie(b.global_step, b.epoch, b.node, b.partner_copy, b.holder);
  });
  return out;
}

}  // namespace ckptio
