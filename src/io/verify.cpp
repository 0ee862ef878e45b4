#include "ckptio/verify.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "ckptio/error.hpp"
#include "core/checksum.hpp"
#include "core/coverage.hpp"
#include "core/piece_math.hpp"
#include "core/quoted.hpp"
#include "h5/container_format.hpp"
#include "h5/container_reader.hpp"
#include "h5/index_codec.hpp"
#include "h5/running_state_codec.hpp"
#include "io/verified_read.hpp"
#include "mpi/agree.hpp"
#include "mpi/comm.hpp"

namespace ckptio {
namespace {

constexpr std::uint64_t kMaxMetadataBytes = 1ull << 30;

bool is_damage(ErrorKind k) { return k == ErrorKind::Format || k == ErrorKind::Integrity; }

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + '\n';
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto end = text.find('\n', pos);
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// The metadata checks rank 0 makes: running state, rank blobs, root attributes.
void check_metadata(detail::h5::ContainerReader& reader, const detail::h5::ContainerIndex& index,
                    const std::string& file, std::vector<std::string>& problems) {
  namespace fmt = detail::h5;
  auto guarded = [&](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  };
  guarded([&] {
    const std::string rs = reader.read_bytes(fmt::kRunningStateDataset, kMaxMetadataBytes);
    if (rs.size() != index.running_state.bytes || detail::xxh3_64(rs.data(), rs.size()) != index.running_state.xxh3)
      throw IntegrityError(file + ": the running state does not match its checksum");
    fmt::decode_running_state(rs, file);
  });
  guarded([&] {
    const auto offsets =
        reader.read_u64(fmt::kRankBlobOffsetsDataset, static_cast<std::uint64_t>(index.world_size) + 1);
    const std::uint64_t total = reader.dataset_elements(fmt::kRankBlobsDataset);
    if (offsets.size() != static_cast<std::size_t>(index.world_size) + 1 || offsets.front() != 0 ||
        offsets.back() != total || !std::is_sorted(offsets.begin(), offsets.end()))
      throw FormatError(file + ": the rank blob offsets table is inconsistent");
    for (int r = 0; r < index.world_size; ++r) {
      const std::string b = reader.read_bytes_range(fmt::kRankBlobsDataset, offsets[r], offsets[r + 1] - offsets[r]);
      if (b.size() != index.rank_blobs[r].bytes || detail::xxh3_64(b.data(), b.size()) != index.rank_blobs[r].xxh3)
        problems.push_back(file + ": the blob of saving rank " + std::to_string(r) + " does not match its checksum");
    }
  });
  if (reader.root_attributes().world_size != index.world_size)
    problems.push_back(file + ": root attribute world_size (" + std::to_string(reader.root_attributes().world_size) +
                       ") differs from the index (" + std::to_string(index.world_size) + ")");
  for (const auto& t : index.tensors) {
    const std::int64_t elements = detail::element_count(t.shape);
    std::vector<Block> blocks;
    blocks.reserve(t.pieces.size());
    for (const auto& p : t.pieces) blocks.push_back(p.block);
    const auto coverage = detail::piece_coverage(Block{std::vector<std::int64_t>(t.shape.size(), 0), t.shape}, blocks);
    if (!coverage.covered)
      problems.push_back(file + ": tensor " + detail::printable_text(t.group + "/" + t.name) + ": its " +
                         std::to_string(t.pieces.size()) +
                         " pieces overlap in a layout too complex to check that they cover it");
    else if (*coverage.covered != elements && index.nodes == 0)  // a node's part holds only its pieces
      problems.push_back(file + ": tensor " + detail::printable_text(t.group + "/" + t.name) +
                         " is incomplete: its pieces cover " + std::to_string(*coverage.covered) + " of " +
                         std::to_string(elements) + " elements");
  }
}

}  // namespace

VerifyReport verify_container(MPI_Comm user_comm, const std::filesystem::path& path) {
  detail::Comm comm(user_comm);
  const std::string file = path.string();
  VerifyReport report;
  report.path = path;

  // Missing or unreadable files are an I/O error, not a verdict about the data.
  detail::run_agreed(comm, "verify", [&] {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) throw IoError("cannot read " + file + ": " + std::strerror(errno));
  });

  std::optional<detail::h5::ContainerReader> reader;
  detail::h5::ContainerIndex index;
  std::optional<detail::Failure> failure;
  try {
    reader.emplace(comm.get(), file);
    report.format_version = reader->format_version();
    index = reader->read_index(kMaxMetadataBytes);
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = detail::agree_failure(comm, failure, "verify")) {
    if (reader) {
      try {
        reader->close();
      } catch (...) {
      }
    }
    if (!is_damage(f->kind)) detail::rethrow(*f);
    report.problems.push_back(f->message);
    return report;
  }
  report.tensors = index.tensors.size();

  std::vector<std::string> mine;
  if (comm.rank() == 0) check_metadata(*reader, index, file, mine);

  // Every stored piece, dealt to the ranks by bytes (largest first, to the least loaded).
  struct Job {
    std::size_t tensor, piece;
    std::uint64_t bytes;
  };
  std::vector<Job> jobs;
  for (std::size_t t = 0; t < index.tensors.size(); ++t)
    for (std::size_t p = 0; p < index.tensors[t].pieces.size(); ++p)
      jobs.push_back({t, p,
                      static_cast<std::uint64_t>(detail::block_volume(index.tensors[t].pieces[p].block)) *
                          dtype_size(index.tensors[t].dtype)});
  report.pieces = jobs.size();
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.bytes > b.bytes; });
  std::vector<std::uint64_t> load(comm.size(), 0);
  std::uint64_t my_bytes = 0;
  for (const auto& j : jobs) {
    const auto r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += j.bytes + 1;
    if (r != comm.rank()) continue;
    try {
      my_bytes += detail::verify_stored_piece(*reader, file, index.tensors[j.tensor], j.piece, index.chunk_bytes);
    } catch (const Error& e) {
      mine.push_back(e.what());
    }
  }
  failure.reset();
  try {
    reader->close();
  } catch (...) {
    failure = detail::capture_current_exception();
  }
  if (auto f = detail::agree_failure(comm, failure, "verify: close")) mine.push_back(f->message);
  report.bytes_verified = static_cast<std::uint64_t>(comm.allreduce_sum(static_cast<std::int64_t>(my_bytes)));
  std::vector<std::string> all;
  std::set<std::string> seen;
  for (const auto& text : comm.allgather_bytes(join_lines(mine)))
    for (auto& line : split_lines(text))
      if (seen.insert(line).second) all.push_back(std::move(line));
  // Rank order: rank 0's metadata problems first, then each rank's pieces; duplicates dropped.
  report.problems = std::move(all);
  return report;
}

}  // namespace ckptio
