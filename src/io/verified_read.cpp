#include "io/verified_read.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "ckptio/error.hpp"
#include "core/checksum.hpp"
#include "core/coverage.hpp"
#include "core/piece_math.hpp"
#include "core/quoted.hpp"

namespace ckptio::detail {
namespace {

// At most this many bytes of a piece are held in memory at once.
constexpr std::uint64_t kWindowBytes = 64ull << 20;
// Chunks read at once when reading straight into the caller's memory.
constexpr std::int64_t kChunksPerDirectRead = 2;

std::string describe(const std::string& file, const h5::IndexTensor& t, std::size_t pi) {
  const auto& p = t.pieces[pi];
  std::string out = file + ": tensor " + printable_text(t.group + "/" + t.name) + ", piece " + std::to_string(pi) +
                    " of " + std::to_string(t.pieces.size());
  if (!p.block.count.empty())
    out += " (offset " + shape_to_string(p.block.offset) + ", count " + shape_to_string(p.block.count) + ")";
  return out + ", written by rank " + std::to_string(p.writer);
}

// Row-major flat index of `at` (absolute coordinates) inside the block `within`.
std::int64_t flat_in(const Block& within, const std::vector<std::int64_t>& at) {
  std::int64_t f = 0;
  for (std::size_t d = 0; d < within.count.size(); ++d) f = f * within.count[d] + (at[d] - within.offset[d]);
  return f;
}

// One stored piece as a sequence of checksum chunks.
struct PieceView {
  h5::ContainerReader& reader;
  const std::string& file;
  const h5::IndexTensor& tensor;
  std::size_t index;
  std::int64_t elements;     // of the piece
  std::int64_t chunk_elems;  // elements per checksum chunk
  std::size_t esz;

  PieceView(h5::ContainerReader& r, const std::string& f, const h5::IndexTensor& t, std::size_t pi,
            std::uint64_t chunk_bytes)
      : reader(r), file(f), tensor(t), index(pi), esz(dtype_size(t.dtype)) {
    const auto& p = t.pieces[pi];
    elements = block_volume(p.block);
    chunk_elems = p.chunks.empty() || chunk_bytes == 0 ? std::max<std::int64_t>(elements, 1)
                                                       : static_cast<std::int64_t>(chunk_bytes / esz);
  }
  const h5::IndexPiece& piece() const { return tensor.pieces[index]; }

  // Reads elements [a, b) of the piece (row-major order of the piece) into out.
  void read_range(std::int64_t a, std::int64_t b, char* out) {
    const auto& p = piece();
    for (auto blk : flat_range_to_blocks(p.block.count, a, b)) {
      for (std::size_t d = 0; d < blk.offset.size(); ++d) blk.offset[d] += p.block.offset[d];
      reader.read_stored_block(tensor, blk, out);
      out += static_cast<std::size_t>(block_volume(blk)) * esz;
    }
  }

  // Verifies the chunks [first, first + n) whose bytes are at data.
  void verify_chunks(std::int64_t first_chunk, std::int64_t end_chunk, const char* data) {
    const auto& p = piece();
    for (std::int64_t c = first_chunk; c < end_chunk; ++c) {
      const std::int64_t lo = c * chunk_elems;
      const std::int64_t hi = std::min(lo + chunk_elems, elements);
      const std::uint64_t bytes = static_cast<std::uint64_t>(hi - lo) * esz;
      const std::uint64_t got = xxh3_64(data + static_cast<std::size_t>(lo - first_chunk * chunk_elems) * esz, bytes);
      const std::uint64_t want = p.chunks.empty() ? p.xxh3 : p.chunks[static_cast<std::size_t>(c)];
      if (got != want) {
        std::string where = describe(file, tensor, index);
        if (!p.chunks.empty())
          where += ", bytes " + std::to_string(lo * esz) + ".." + std::to_string(hi * esz) + " (checksum chunk " +
                   std::to_string(c) + " of " + std::to_string(p.chunks.size()) + ")";
        throw IntegrityError(where + ": data does not match its checksum (stored xxh3 " + to_hex64(want) + ", read " +
                             to_hex64(got) + ")");
      }
    }
  }
};

// True when the elements of `inner` are contiguous in the row-major layout of `outer`.
bool contiguous_in(const Block& inner, const Block& outer) {
  std::size_t d = 0;
  while (d < inner.count.size() && inner.count[d] == 1) ++d;
  if (d < inner.count.size()) ++d;  // the first dimension with more than one element
  for (; d < inner.count.size(); ++d)
    if (inner.count[d] != outer.count[d]) return false;
  return true;
}

// Copies the part `part` of the piece into `out` (row-major of `want`), reading and
// verifying the chunks it touches window by window.
void copy_part(PieceView& pv, const Block& part, const Block& want, char* out) {
  const Block& pb = pv.piece().block;
  const std::size_t rank = part.count.size();
  // Merge the trailing dimensions where part spans both the piece and `want` into rows.
  std::size_t k = rank;
  while (k > 0 && part.count[k - 1] == pb.count[k - 1] && part.count[k - 1] == want.count[k - 1]) --k;
  if (k == rank && rank > 0) k = rank - 1;
  std::int64_t row = 1;
  for (std::size_t d = k; d < rank; ++d) row *= part.count[d];
  std::vector<std::int64_t> at = part.offset;  // absolute coordinates of the row start
  const std::int64_t last = flat_in(pb,
                                    [&] {
                                      std::vector<std::int64_t> e = part.offset;
                                      for (std::size_t d = 0; d < rank; ++d) e[d] += part.count[d] - 1;
                                      return e;
                                    }()) +
                            1;
  const std::int64_t window_elems = std::max<std::int64_t>(
      pv.chunk_elems, static_cast<std::int64_t>(kWindowBytes / pv.esz) / pv.chunk_elems * pv.chunk_elems);
  std::vector<char> buf;
  std::int64_t win_lo = 0, win_hi = 0;  // piece elements held in buf
  const std::size_t esz = pv.esz;
  for (;;) {
    std::int64_t src = flat_in(pb, at);
    std::int64_t dst = flat_in(want, at);
    std::int64_t left = row;
    while (left > 0) {
      if (src >= win_hi || src < win_lo) {
        win_lo = src / pv.chunk_elems * pv.chunk_elems;
        const std::int64_t need_end = (last + pv.chunk_elems - 1) / pv.chunk_elems * pv.chunk_elems;
        win_hi = std::min({win_lo + window_elems, need_end, pv.elements});
        buf.resize(static_cast<std::size_t>(win_hi - win_lo) * esz);
        pv.read_range(win_lo, win_hi, buf.data());
        pv.verify_chunks(win_lo / pv.chunk_elems, (win_hi + pv.chunk_elems - 1) / pv.chunk_elems, buf.data());
      }
      const std::int64_t n = std::min(left, win_hi - src);
      std::memcpy(out + static_cast<std::size_t>(dst) * esz, buf.data() + static_cast<std::size_t>(src - win_lo) * esz,
                  static_cast<std::size_t>(n) * esz);
      src += n;
      dst += n;
      left -= n;
    }
    // Next row: odometer over dimensions [0, k).
    std::size_t d = k;
    while (d > 0) {
      --d;
      if (++at[d] < part.offset[d] + part.count[d]) break;
      at[d] = part.offset[d];
      if (d == 0) return;
    }
    if (k == 0) return;
  }
}

// The common resharded case (row or flat splits): `part` is one contiguous run of the
// piece and of `want`. Whole chunks inside the run are read straight into `out` and hashed
// there; only the chunks at its two ends go through a buffer.
void copy_contiguous(PieceView& pv, const Block& part, const Block& want, char* out) {
  const std::size_t esz = pv.esz;
  const std::int64_t first = flat_in(pv.piece().block, part.offset);
  const std::int64_t last = first + block_volume(part);
  char* base = out + static_cast<std::size_t>(flat_in(want, part.offset)) * esz;  // element `first`
  const std::int64_t ce = pv.chunk_elems;
  std::vector<char> buf;
  for (std::int64_t lo = first / ce * ce; lo < last;) {
    const bool head_or_tail = lo < first || std::min(lo + ce, pv.elements) > last;
    std::int64_t hi = std::min(lo + (head_or_tail ? 1 : kChunksPerDirectRead) * ce, pv.elements);
    if (!head_or_tail && hi > last) hi = std::max(lo + ce, last / ce * ce);  // leave the tail chunk
    if (!head_or_tail) {
      char* dst = base + static_cast<std::size_t>(lo - first) * esz;
      pv.read_range(lo, hi, dst);
      pv.verify_chunks(lo / ce, (hi + ce - 1) / ce, dst);
    } else {
      buf.resize(static_cast<std::size_t>(hi - lo) * esz);
      pv.read_range(lo, hi, buf.data());
      pv.verify_chunks(lo / ce, (hi + ce - 1) / ce, buf.data());
      const std::int64_t a = std::max(lo, first), b = std::min(hi, last);
      std::memcpy(base + static_cast<std::size_t>(a - first) * esz, buf.data() + static_cast<std::size_t>(a - lo) * esz,
                  static_cast<std::size_t>(b - a) * esz);
    }
    lo = hi;
  }
}

// Reads `part` (inside the piece and inside `want`) into `out`, laid out as `want`, verifying
// every chunk it reads.
void read_part(PieceView& pv, const Block& part, const Block& want, char* out) {
  const Block& pb = pv.piece().block;
  if (part == pb && contiguous_in(part, want)) {
    // Straight into the caller's memory, a few chunks at a time, each hashed while it is
    // still in the CPU cache.
    char* dst = out + static_cast<std::size_t>(flat_in(want, part.offset)) * pv.esz;
    const std::int64_t step = pv.chunk_elems * kChunksPerDirectRead;
    for (std::int64_t lo = 0; lo < pv.elements; lo += step) {
      const std::int64_t hi = std::min(lo + step, pv.elements);
      pv.read_range(lo, hi, dst + static_cast<std::size_t>(lo) * pv.esz);
      pv.verify_chunks(lo / pv.chunk_elems, (hi + pv.chunk_elems - 1) / pv.chunk_elems,
                       dst + static_cast<std::size_t>(lo) * pv.esz);
    }
  } else if (contiguous_in(part, pb) && contiguous_in(part, want)) {
    copy_contiguous(pv, part, want, out);
  } else {
    copy_part(pv, part, want, out);
  }
}

}  // namespace

void read_block_verified(h5::ContainerReader& reader, const std::string& file, const h5::IndexTensor& tensor,
                         std::uint64_t chunk_bytes, const Block& want, char* out) {
  // The parts of the stored pieces inside `want` must cover it: a hole would leave the
  // caller's memory as it was. Volumes are not summed (a duplicated piece would hide a
  // hole). Overlapping pieces (ranks that saved overlapping shards) are all read, each
  // verified against its own checksums: they are views of the same dataset, so they cannot
  // disagree unless one of them fails its checksum.
  std::vector<std::pair<std::size_t, Block>> parts;
  std::vector<Block> blocks;
  for (std::size_t pi = 0; pi < tensor.pieces.size(); ++pi) {
    const auto& p = tensor.pieces[pi];
    if (p.block.offset.size() != want.offset.size()) continue;
    auto part = intersect(want, p.block);
    if (!part || block_volume(*part) == 0) continue;
    blocks.push_back(*part);
    parts.emplace_back(pi, std::move(*part));
  }
  const PieceCoverage coverage = piece_coverage(want, blocks);
  if (!coverage.exact && coverage.covered != block_volume(want)) {
    const std::string requested =
        want.count.empty() ? std::string("(scalar)") : shape_to_string(want.offset) + "+" + shape_to_string(want.count);
    throw FormatError(file + ": tensor " + printable_text(tensor.group + "/" + tensor.name) +
                      ": the stored pieces do not cover the requested block " + requested +
                      (coverage.covered ? " (they cover " + std::to_string(*coverage.covered) + " of its " +
                                              std::to_string(block_volume(want)) + " elements)"
                                        : std::string(" (they overlap in a layout too complex to count)")));
  }
  for (const auto& [pi, part] : parts) {
    PieceView pv(reader, file, tensor, pi, chunk_bytes);
    read_part(pv, part, want, out);
  }
}

std::uint64_t verify_stored_piece(h5::ContainerReader& reader, const std::string& file, const h5::IndexTensor& tensor,
                                  std::size_t piece, std::uint64_t chunk_bytes) {
  PieceView pv(reader, file, tensor, piece, chunk_bytes);
  const std::int64_t window_elems = std::max<std::int64_t>(
      pv.chunk_elems, static_cast<std::int64_t>(kWindowBytes / pv.esz) / pv.chunk_elems * pv.chunk_elems);
  std::vector<char> buf;
  for (std::int64_t lo = 0; lo < pv.elements; lo += window_elems) {
    const std::int64_t hi = std::min(lo + window_elems, pv.elements);
    buf.resize(static_cast<std::size_t>(hi - lo) * pv.esz);
    pv.read_range(lo, hi, buf.data());
    pv.verify_chunks(lo / pv.chunk_elems, (hi + pv.chunk_elems - 1) / pv.chunk_elems, buf.data());
  }
  return static_cast<std::uint64_t>(pv.elements) * pv.esz;
}

}  // namespace ckptio::detail
