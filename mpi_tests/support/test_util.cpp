#include "support/test_util.hpp"

#include <cstdlib>
#include <cstring>
#include <functional>

#include "core/piece_math.hpp"

namespace ckptio::test {

int world_rank(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}
int world_size(MPI_Comm comm) {
  int n = 0;
  MPI_Comm_size(comm, &n);
  return n;
}

std::int64_t sum_over_ranks(std::uint64_t value) {
  std::int64_t v = static_cast<std::int64_t>(value), total = 0;
  MPI_Allreduce(&v, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

SharedTempDir::SharedTempDir(MPI_Comm comm) : comm_(comm) {
  std::string path;
  if (world_rank(comm) == 0) {
    const char* base = std::getenv("CKPTIO_TEST_TMPDIR");
    std::string pattern =
        (base ? std::filesystem::path(base) : std::filesystem::temp_directory_path()) / "ckptio-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) std::abort();
    path = buf.data();
  }
  int len = static_cast<int>(path.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  path.resize(len);
  MPI_Bcast(path.data(), len, MPI_CHAR, 0, comm);
  path_ = path;
}

SharedTempDir::~SharedTempDir() {
  MPI_Barrier(comm_);
  if (world_rank(comm_) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::Replicated:
      return "replicated";
    case Layout::Dim0Blocks:
      return "dim0-blocks";
    case Layout::Dim1Blocks:
      return "dim1-blocks";
    case Layout::LastDimBlocks:
      return "lastdim-blocks";
    case Layout::SkewedDim0:
      return "skewed-dim0";
    case Layout::Flat:
      return "flat";
    case Layout::SkewedFlat:
      return "skewed-flat";
  }
  return "?";
}

namespace {

// [begin, end) of part `rank` when `length` is split into `ranks` balanced parts.
std::pair<std::int64_t, std::int64_t> balanced(std::int64_t length, int rank, int ranks) {
  const std::int64_t base = length / ranks, extra = length % ranks;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

// Rank 0 gets nothing; rank r > 0 gets a share proportional to r.
std::pair<std::int64_t, std::int64_t> skewed(std::int64_t length, int rank, int ranks) {
  if (ranks == 1) return {0, length};
  const std::int64_t weight_total = static_cast<std::int64_t>(ranks) * (ranks - 1) / 2;
  auto cut = [&](int r) { return length * (static_cast<std::int64_t>(r) * (r - 1) / 2) / weight_total; };
  return {cut(rank), rank + 1 == ranks ? length : cut(rank + 1)};
}

}  // namespace

TensorShard make_shard(std::vector<std::uint8_t>& storage, DType dtype, const Shape& shape, Layout layout, int rank,
                       int ranks) {
  const std::int64_t total = detail::element_count(shape);
  auto block_along = [&](std::size_t dim, bool skew) {
    auto [b, e] = skew ? skewed(shape[dim], rank, ranks) : balanced(shape[dim], rank, ranks);
    std::vector<std::int64_t> offset(shape.size(), 0), count = shape;
    offset[dim] = b;
    count[dim] = e - b;
    storage.assign(static_cast<std::size_t>(detail::element_count(count)) * dtype_size(dtype) + 1, 0);
    return TensorShard::block(storage.data(), dtype, shape, offset, count);
  };
  auto flat = [&](bool skew) {
    auto [b, e] = skew ? skewed(total, rank, ranks) : balanced(total, rank, ranks);
    storage.assign(static_cast<std::size_t>(e - b) * dtype_size(dtype) + 1, 0);
    return TensorShard::flat(storage.data(), dtype, shape, b, e);
  };
  switch (layout) {
    case Layout::Replicated:
      storage.assign(static_cast<std::size_t>(total) * dtype_size(dtype) + 1, 0);
      return TensorShard::whole(storage.data(), dtype, shape);
    case Layout::Dim0Blocks:
      if (!shape.empty()) return block_along(0, false);
      break;
    case Layout::Dim1Blocks:
      if (shape.size() >= 2) return block_along(1, false);
      break;
    case Layout::LastDimBlocks:
      if (!shape.empty()) return block_along(shape.size() - 1, false);
      break;
    case Layout::SkewedDim0:
      if (!shape.empty()) return block_along(0, true);
      break;
    case Layout::Flat:
      return flat(false);
    case Layout::SkewedFlat:
      return flat(true);
  }
  return flat(false);
}

std::uint64_t seed_for(const std::string& name) { return std::hash<std::string>{}(name); }

std::uint8_t pattern_byte(std::uint64_t seed, DType dtype, std::int64_t flat, std::size_t b) {
  std::uint64_t x = seed ^ (static_cast<std::uint64_t>(flat) * 0x9E3779B97F4A7C15ull) ^ (b * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  if (dtype == DType::BOOL) return static_cast<std::uint8_t>(x & 1);
  return static_cast<std::uint8_t>(x);
}

namespace {

// Calls fn(flat index, element bytes) for every element of the shard's memory, in order.
void for_each_element(const TensorShard& shard, const std::function<void(std::int64_t, std::uint8_t*)>& fn) {
  const std::size_t size = dtype_size(shard.dtype);
  auto* base = static_cast<std::uint8_t*>(shard.data.writable());  // test shards are writable
  const Shape& shape = shard.global_shape;
  for (const auto& seg : detail::segments_of(shard)) {
    const auto& b = seg.block;
    const std::size_t rank = shape.size();
    std::vector<std::int64_t> idx(rank, 0);
    const std::int64_t n = detail::block_volume(b);
    for (std::int64_t k = 0; k < n; ++k) {
      std::int64_t flat = 0;
      for (std::size_t d = 0; d < rank; ++d) flat = flat * shape[d] + b.offset[d] + idx[d];
      fn(flat, base + (seg.memory_offset + k) * size);
      for (std::size_t d = rank; d-- > 0;) {
        if (++idx[d] < b.count[d]) break;
        idx[d] = 0;
      }
    }
  }
}

}  // namespace

void fill_pattern(const TensorShard& shard, std::uint64_t seed) {
  const std::size_t size = dtype_size(shard.dtype);
  for_each_element(shard, [&](std::int64_t flat, std::uint8_t* p) {
    for (std::size_t b = 0; b < size; ++b) p[b] = pattern_byte(seed, shard.dtype, flat, b);
  });
}

std::string check_pattern(const TensorShard& shard, std::uint64_t seed) {
  const std::size_t size = dtype_size(shard.dtype);
  std::string problem;
  for_each_element(shard, [&](std::int64_t flat, std::uint8_t* p) {
    if (!problem.empty()) return;
    for (std::size_t b = 0; b < size; ++b)
      if (p[b] != pattern_byte(seed, shard.dtype, flat, b)) {
        problem = "element " + std::to_string(flat) + " byte " + std::to_string(b) + ": got " + std::to_string(p[b]) +
                  " expected " + std::to_string(pattern_byte(seed, shard.dtype, flat, b));
        return;
      }
  });
  return problem;
}

void poison(const TensorShard& shard, std::uint8_t value) {
  std::memset(shard.data.writable(), value, shard.local_bytes());
}

}  // namespace ckptio::test
