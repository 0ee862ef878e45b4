#include "io/device_replicas.hpp"

#include <cstring>
#include <set>
#include <string>

#include "ckptio/error.hpp"
#include "ckptio/shard.hpp"
#include "core/log.hpp"
#include "mpi/agree.hpp"

namespace ckptio::detail {

namespace {

// Pieces posted per NCCL group; every rank closes its groups at the same pieces of the plan,
// so a group's sends and receives match within the group.
constexpr int kPiecesPerGroup = 256;
constexpr std::size_t kUuidBytes = 16;

struct RankInfo {
  int device = kHostMemory;       // the one device of the rank's device shards, else kHostMemory
  int comm_device = kHostMemory;  // the device of the existing communicator, else kHostMemory
  std::string uuid;
  std::vector<int> request_devices;
};

std::string encode(const RankInfo& info) {
  std::string out(2 * sizeof(int) + kUuidBytes + info.request_devices.size() * sizeof(int), '\0');
  std::memcpy(out.data(), &info.device, sizeof(int));
  std::memcpy(out.data() + sizeof(int), &info.comm_device, sizeof(int));
  std::memcpy(out.data() + 2 * sizeof(int), info.uuid.data(), std::min(info.uuid.size(), kUuidBytes));
  if (!info.request_devices.empty())
    std::memcpy(out.data() + 2 * sizeof(int) + kUuidBytes, info.request_devices.data(),
                info.request_devices.size() * sizeof(int));
  return out;
}

RankInfo decode(const std::string& bytes) {
  RankInfo info;
  std::memcpy(&info.device, bytes.data(), sizeof(int));
  std::memcpy(&info.comm_device, bytes.data() + sizeof(int), sizeof(int));
  info.uuid = bytes.substr(2 * sizeof(int), kUuidBytes);
  info.request_devices.resize((bytes.size() - 2 * sizeof(int) - kUuidBytes) / sizeof(int));
  if (!info.request_devices.empty())
    std::memcpy(info.request_devices.data(), bytes.data() + 2 * sizeof(int) + kUuidBytes,
                info.request_devices.size() * sizeof(int));
  return info;
}

}  // namespace

bool any_device_piece(const DevicePieces& pieces) {
  for (const auto& t : pieces)
    for (char c : t)
      if (c) return true;
  return false;
}

DevicePieces plan_device_replicas(const Comm& comm, NcclState& nccl, const WritePlan& plan,
                                  const std::vector<int>& request_devices) {
  DevicePieces none(plan.tensors.size());
  // Everything deciding whether to look further is the same on every rank.
  if (!cuda::nccl_supported() || nccl.failed) return none;
  bool replicas = false;
  for (const auto& t : plan.tensors)
    for (const auto& p : t.pieces) replicas = replicas || p.holders.size() > 1;
  if (!replicas) return none;

  RankInfo mine;
  mine.request_devices = request_devices;
  mine.comm_device = nccl.comm ? nccl.comm.device() : kHostMemory;
  std::set<int> devices;
  for (int d : request_devices)
    if (d != kHostMemory) devices.insert(d);
  run_agreed(comm, "load: identify the CUDA devices", [&] {
    if (devices.size() != 1) return;
    mine.device = *devices.begin();
    mine.uuid = cuda::device_uuid(mine.device);
  });
  std::vector<RankInfo> all;
  for (const auto& bytes : comm.allgather_bytes(encode(mine))) all.push_back(decode(bytes));

  std::set<std::string> uuids;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r].device == kHostMemory) return none;  // a rank without one device of its own
    if (!uuids.insert(all[r].uuid).second) {
      log_info("load: ranks share a GPU; replicated pieces go over MPI, not NCCL");
      return none;
    }
    if (nccl.comm && all[r].comm_device != all[r].device) {
      log_info("load: the NCCL communicator was made for other devices; replicated pieces go over MPI");
      return none;
    }
  }

  DevicePieces flags(plan.tensors.size());
  bool any = false;
  for (std::size_t t = 0; t < plan.tensors.size(); ++t) {
    flags[t].assign(plan.tensors[t].pieces.size(), 0);
    for (std::size_t i = 0; i < plan.tensors[t].pieces.size(); ++i) {
      const auto& p = plan.tensors[t].pieces[i];
      if (p.holders.size() < 2) continue;
      bool on_devices = true;
      for (std::size_t h = 0; h < p.holders.size(); ++h)
        on_devices = on_devices && all[p.holders[h]].request_devices.at(p.holder_locations[h].first) != kHostMemory;
      flags[t][i] = on_devices;
      any = any || on_devices;
    }
  }
  if (!any) return none;

  if (!nccl.comm) {
    try {
      const std::string id = agreed_from_rank0(comm, "load: create an NCCL id", [] { return cuda::nccl_unique_id(); });
      run_agreed(comm, "load: create the NCCL communicator",
                 [&] { nccl.comm = cuda::NcclComm(id, comm.size(), comm.rank(), mine.device); });
    } catch (const Error& e) {
      nccl.comm = cuda::NcclComm();
      nccl.failed = true;
      log_warn("load: no NCCL communicator (", e.what(), "); replicated pieces go over MPI");
      return none;
    }
    log_info("load: NCCL communicator of ", comm.size(), " ranks created");
  }
  return flags;
}

std::uint64_t send_device_replicas(const Comm& comm, NcclState& nccl, const WritePlan& plan, const DevicePieces& pieces,
                                   const std::function<char*(int, int)>& piece_memory) {
  if (!any_device_piece(pieces)) return 0;
  const int rank = comm.rank();
  std::uint64_t received = 0;
  std::vector<cuda::NcclTransfer> batch;
  int in_batch = 0;
  run_agreed(comm, "load: send replicated pieces over NCCL", [&] {
    for (std::size_t t = 0; t < plan.tensors.size(); ++t)
      for (std::size_t i = 0; i < plan.tensors[t].pieces.size(); ++i) {
        if (!pieces[t][i]) continue;
        const auto& p = plan.tensors[t].pieces[i];
        for (std::size_t h = 0; h < p.holders.size(); ++h) {
          const int holder = p.holders[h];
          if (p.writer == rank && holder != rank)
            batch.push_back({piece_memory(p.writer_decl, p.writer_segment), p.bytes, holder, true});
          else if (holder == rank && p.writer != rank) {
            batch.push_back(
                {piece_memory(p.holder_locations[h].first, p.holder_locations[h].second), p.bytes, p.writer, false});
            received += p.bytes;
          }
        }
        if (++in_batch == kPiecesPerGroup) {
          nccl.comm.exchange(batch);
          batch.clear();
          in_batch = 0;
        }
      }
    nccl.comm.exchange(batch);
  });
  return received;
}

}  // namespace ckptio::detail
