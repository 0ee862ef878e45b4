// Test and benchmark helper for the multi-node tests (slurm/virtual-cluster): saves or loads
// one checkpoint through the public API on however many ranks and nodes it runs, with data
// that every rank can recompute, and reports what crossed nodes.
//
//   multinode_roundtrip save ROOT [--mib M] [--hint KEY=VALUE]... [--repeat N]
//   multinode_roundtrip load ROOT [--mib M] [--repeat N] [--evict-cache 1]
//
// The checkpoint holds M MiB: "model/sharded" (F32, 2/3 of it, rows split into blocks over
// the ranks), "model/replicated" (F32, 1/6, a whole copy on every rank) and "optimizer/flat"
// (F64, 1/6, ZeRO-style flat ranges). --evict-cache 1 drops the container's pages from the
// page cache before each load (posix_fadvise), so a repeated load reads the disk. Every element's bits come from a hash
// of its index, so a load on any number of ranks checks every byte against the expected value (bit-exact). Rank 0
// prints, one `key: value` a line:
//   hosts: the host of each rank, in rank order (ranks on other nodes show other names)
//   nodes: how many distinct hosts
//   bit-exact: yes|no                               (load)
//   bytes read: the sum over ranks of LoadResult::bytes_read
//   unique bytes: the checkpoint's tensor bytes, every replicated piece counted once
//   bytes received: the sum of LoadResult::bytes_received
//   save seconds / load seconds: each repetition's time, slowest rank (for bench/multinode)
// Exit status 0 on success, 1 on a ckptio error or a mismatch (on every rank), 2 on usage.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ckptio/ckptio.hpp"

namespace {

struct Args {
  std::string mode;
  std::filesystem::path root;
  std::int64_t mib = 16;
  int repeat = 1;
  bool evict_cache = false;
  std::map<std::string, std::string> hints;
};

constexpr std::int64_t kColumns = 1024;

// The bits of element `index` of tensor `salt`: a SplitMix64 step, so neighbours differ in
// every byte and a misplaced piece cannot go unnoticed.
std::uint64_t element_bits(std::uint64_t salt, std::uint64_t index) {
  std::uint64_t z = index + salt * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Finite floats only (a NaN's payload would still compare bit-exact, but keep it plain).
float f32_at(std::uint64_t salt, std::uint64_t index) {
  const auto bits = static_cast<std::uint32_t>(element_bits(salt, index) & 0x3FFFFFFFu);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
double f64_at(std::uint64_t salt, std::uint64_t index) {
  const std::uint64_t bits = element_bits(salt, index) & 0x3FFFFFFFFFFFFFFFull;
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

struct Layout {
  int rank = 0, size = 1;
  std::int64_t rows = 0;        // model/sharded is rows x kColumns F32
  std::int64_t replicated = 0;  // model/replicated elements (F32)
  std::int64_t flat = 0;        // optimizer/flat elements (F64)
  std::int64_t begin(std::int64_t n) const { return n * rank / size; }
  std::int64_t end(std::int64_t n) const { return n * (rank + 1) / size; }
  std::uint64_t unique_bytes() const {
    return static_cast<std::uint64_t>(rows * kColumns * 4 + replicated * 4 + flat * 8);
  }
};

// This rank's part of the checkpoint: filled with the expected values, or zeros to load into.
struct Buffers {
  std::vector<float> sharded, replicated;
  std::vector<double> flat;
};

Buffers make_buffers(const Layout& l, bool expected) {
  Buffers b;
  const std::int64_t r0 = l.begin(l.rows), r1 = l.end(l.rows);
  const std::int64_t f0 = l.begin(l.flat), f1 = l.end(l.flat);
  b.sharded.resize(static_cast<std::size_t>((r1 - r0) * kColumns));
  b.replicated.resize(static_cast<std::size_t>(l.replicated));
  b.flat.resize(static_cast<std::size_t>(f1 - f0));
  if (!expected) return b;
  for (std::size_t i = 0; i < b.sharded.size(); ++i) b.sharded[i] = f32_at(1, r0 * kColumns + i);
  for (std::size_t i = 0; i < b.replicated.size(); ++i) b.replicated[i] = f32_at(2, i);
  for (std::size_t i = 0; i < b.flat.size(); ++i) b.flat[i] = f64_at(3, f0 + i);
  return b;
}

ckptio::Snapshot snapshot_of(const Layout& l, Buffers& b) {
  using ckptio::DType;
  using ckptio::TensorShard;
  const std::int64_t r0 = l.begin(l.rows), r1 = l.end(l.rows);
  ckptio::StateDict model, optimizer;
  model.add("sharded",
            TensorShard::block(b.sharded.data(), DType::F32, {l.rows, kColumns}, {r0, 0}, {r1 - r0, kColumns}));
  model.add("replicated", TensorShard::whole(b.replicated.data(), DType::F32, {l.replicated}));
  optimizer.add("flat", TensorShard::flat(b.flat.data(), DType::F64, {l.flat}, l.begin(l.flat), l.end(l.flat)));
  ckptio::Snapshot s;
  s.model = std::move(model);
  s.optimizer = std::move(optimizer);
  s.running.global_step = 1;
  return s;
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// Every rank's host, in rank order (collective).
std::vector<std::string> all_hosts(int size) {
  char mine[64] = {};
  std::strncpy(mine, host_name().c_str(), sizeof mine - 1);
  std::vector<char> all(static_cast<std::size_t>(size) * sizeof mine);
  MPI_Allgather(mine, sizeof mine, MPI_CHAR, all.data(), sizeof mine, MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> hosts;
  for (int r = 0; r < size; ++r) hosts.emplace_back(all.data() + r * sizeof mine);
  return hosts;
}

// Drops the file's pages from the page cache (written back first), so the next read goes to disk.
void evict_from_page_cache(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double slowest(double seconds) {
  double max = 0;
  MPI_Allreduce(&seconds, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return max;
}

std::uint64_t sum(std::uint64_t value) {
  std::uint64_t total = 0;
  MPI_Allreduce(&value, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

bool parse(int argc, char** argv, Args& a) {
  if (argc < 3) return false;
  a.mode = argv[1];
  a.root = argv[2];
  if (a.mode != "save" && a.mode != "load") return false;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    if (arg == "--mib") {
      a.mib = std::stoll(value);
    } else if (arg == "--evict-cache") {
      a.evict_cache = value == "1";
    } else if (arg == "--repeat") {
      a.repeat = std::stoi(value);
    } else if (arg == "--hint" && value.find('=') != std::string::npos) {
      a.hints[value.substr(0, value.find('='))] = value.substr(value.find('=') + 1);
    } else {
      return false;
    }
  }
  return a.mib >= 1 && a.repeat >= 1;
}

int run(const Args& a, const Layout& l) {
  const std::vector<std::string> hosts = all_hosts(l.size);
  std::ostringstream report;
  std::vector<std::string> distinct(hosts);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  report << "hosts:";
  for (const auto& h : hosts) report << ' ' << h;
  report << "\nnodes: " << distinct.size() << '\n';
  ckptio::CheckpointOptions options;
  options.mpi_io_hints = a.hints;
  options.keep_last = 1;
  bool exact = true;
  {
    ckptio::CheckpointIO io(MPI_COMM_WORLD, a.root, options);
    if (a.mode == "save") {
      Buffers b = make_buffers(l, true);
      const ckptio::Snapshot s = snapshot_of(l, b);
      report << "save seconds:";
      for (int i = 0; i < a.repeat; ++i) {
        MPI_Barrier(MPI_COMM_WORLD);
        const auto start = std::chrono::steady_clock::now();
        io.save(s);
        report << ' ' << slowest(seconds_since(start));
      }
      report << '\n';
    } else {
      const Buffers expected = make_buffers(l, true);
      Buffers b = make_buffers(l, false);
      const ckptio::Snapshot targets = snapshot_of(l, b);
      report << "load seconds:";
      ckptio::LoadResult result;
      for (int i = 0; i < a.repeat; ++i) {
        if (a.evict_cache) {
          const auto latest = io.latest();  // collective
          if (l.rank == 0 && latest) evict_from_page_cache(*latest);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        const auto start = std::chrono::steady_clock::now();
        result = io.load(a.root, targets);
        report << ' ' << slowest(seconds_since(start));
      }
      report << '\n';
      exact = std::memcmp(b.sharded.data(), expected.sharded.data(), b.sharded.size() * 4) == 0 &&
              std::memcmp(b.replicated.data(), expected.replicated.data(), b.replicated.size() * 4) == 0 &&
              std::memcmp(b.flat.data(), expected.flat.data(), b.flat.size() * 8) == 0;
      int all_exact = exact ? 1 : 0;
      MPI_Allreduce(MPI_IN_PLACE, &all_exact, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
      exact = all_exact == 1;
      report << "bit-exact: " << (exact ? "yes" : "no") << '\n';
      report << "bytes read: " << sum(result.bytes_read) << '\n';
      report << "unique bytes: " << l.unique_bytes() << '\n';
      report << "bytes received: " << sum(result.bytes_received) << '\n';
    }
  }
  if (l.rank == 0) std::cout << report.str() << std::flush;
  return exact ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  Layout l;
  MPI_Comm_rank(MPI_COMM_WORLD, &l.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &l.size);
  Args a;
  int code = 0;
  if (!parse(argc, argv, a)) {
    if (l.rank == 0)
      std::cerr << "usage: multinode_roundtrip save|load ROOT [--mib M] [--hint KEY=VALUE]... [--repeat N]\n";
    code = 2;
  } else {
    const std::int64_t sixth = (a.mib << 20) / 6;
    l.rows = 4 * sixth / 4 / kColumns;
    l.replicated = sixth / 4;
    l.flat = sixth / 8;
    try {
      code = run(a, l);
    } catch (const std::exception& e) {
      std::cerr << "multinode_roundtrip: rank " << l.rank << " on " << host_name() << ": " << e.what() << '\n';
      code = 1;
    }
  }
  MPI_Finalize();
  return code;
}
