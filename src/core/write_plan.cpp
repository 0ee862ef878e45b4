#include "core/write_plan.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <iterator>
#include <map>
#include <numeric>
#include <string_view>

#include "ckptio/error.hpp"
#include "ckptio/snapshot.hpp"
#include "core/checksum.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail {
namespace {

std::string qualified(int group, const std::string& name) { return std::string(kGroupNames[group]) + "/" + name; }

// The planned tensors by group and name: open addressing over their positions, sized once
// for every declaration (no allocation per tensor: a node-based map cost as much as the rest
// of the planning at 100,000 tensors).
class TensorTable {
 public:
  explicit TensorTable(std::size_t declarations) {
    std::size_t capacity = 16;
    while (capacity < 2 * declarations) capacity *= 2;
    slots_.assign(capacity, kEmpty);
  }
  // The slot of (group, name): its position in `tensors`, or kEmpty where it would go.
  std::uint32_t& find(const std::vector<PlannedTensor>& tensors, int group, std::string_view name) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t slot = (xxh3_64(name.data(), name.size()) + static_cast<std::size_t>(group)) & mask;
    for (; slots_[slot] != kEmpty; slot = (slot + 1) & mask) {
      const PlannedTensor& t = tensors[slots_[slot]];
      if (t.group == group && t.name == name) break;
    }
    return slots_[slot];
  }
  static constexpr std::uint32_t kEmpty = UINT32_MAX;

 private:
  std::vector<std::uint32_t> slots_;
};

// Whether the pieces tile the tensor as blocks of whole rows (every dimension but the
// first spanned, the first split without a hole or an overlap): how saves usually split a
// tensor, decided without the general coverage count and its allocations.
bool tiles_by_rows(const Shape& shape, const std::vector<PlannedPiece>& pieces) {
  if (shape.empty()) return !pieces.empty();
  if (pieces.size() == 1) {  // one piece (a tensor whole on one rank, or replicated): no sorting
    const Block& b = pieces[0].block;
    for (std::size_t d = 0; d < shape.size(); ++d)
      if (b.offset[d] != 0 || b.count[d] != shape[d]) return false;
    return true;
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> rows;  // begin, end
  rows.reserve(pieces.size());
  for (const auto& p : pieces) {
    for (std::size_t d = 1; d < shape.size(); ++d)
      if (p.block.offset[d] != 0 || p.block.count[d] != shape[d]) return false;
    if (p.block.count[0] > 0) rows.emplace_back(p.block.offset[0], p.block.offset[0] + p.block.count[0]);
  }
  std::sort(rows.begin(), rows.end());
  std::int64_t end = 0;
  for (const auto& [b, e] : rows) {
    if (b != end) return false;
    end = e;
  }
  return end == shape[0];
}

// A distinct piece waiting for its writer.
struct Candidate {
  std::uint64_t bytes;
  std::uint32_t tensor;
  std::uint32_t piece;
};

// Largest first, each to its least-loaded holder (ties: lowest rank).
void assign_writers(WritePlan& plan, std::vector<Candidate>& all_pieces) {
  std::stable_sort(all_pieces.begin(), all_pieces.end(),
                   [](const Candidate& a, const Candidate& b) { return a.bytes > b.bytes; });
  for (const auto& c : all_pieces) {
    PlannedPiece& p = plan.tensors[c.tensor].pieces[c.piece];
    std::size_t best = 0;
    for (std::size_t h = 1; h < p.holders.size(); ++h)
      if (plan.bytes_per_rank[p.holders[h]] < plan.bytes_per_rank[p.holders[best]]) best = h;
    p.writer = p.holders[best];
    p.writer_decl = p.holder_locations[best].first;
    p.writer_segment = p.holder_locations[best].second;
    plan.bytes_per_rank[p.writer] += p.bytes;
  }
}

}  // namespace

WritePlan make_write_plan(std::vector<std::vector<TensorDecl>> decls_per_rank, Coverage coverage) {
  const int world = static_cast<int>(decls_per_rank.size());
  WritePlan plan;
  plan.bytes_per_rank.assign(world, 0);

  // Tensor order: by group; within a group, rank 0's order, then tensors only other ranks
  // hold, in rank order. slot[r][i]: the planned tensor of rank r's declaration i.
  std::size_t declared = 0;
  for (const auto& decls : decls_per_rank) declared += decls.size();
  // Keys view the planned tensors' names, which never move: room for every declaration is
  // reserved, and names and blocks are moved out of the declarations, which the plan owns.
  if (declared >= TensorTable::kEmpty) throw UsageError("too many tensor declarations to plan");
  TensorTable index(declared);
  plan.tensors.reserve(declared);
  std::vector<std::vector<std::size_t>> slot(world);
  for (int r = 0; r < world; ++r) slot[r].resize(decls_per_rank[r].size());
  std::vector<int> first_holder;
  for (int group = 0; group < 3; ++group) {
    for (int r = 0; r < world; ++r) {
      for (std::size_t di = 0; di < decls_per_rank[r].size(); ++di) {
        auto& d = decls_per_rank[r][di];
        if (d.group != group) continue;
        std::uint32_t& found = index.find(plan.tensors, d.group, d.name);
        if (found == TensorTable::kEmpty) {
          found = static_cast<std::uint32_t>(plan.tensors.size());
          slot[r][di] = found;
          PlannedTensor& t = plan.tensors.emplace_back();
          t.group = d.group;
          t.name = std::move(d.name);
          t.dtype = d.dtype;
          t.shape = std::move(d.shape);
          first_holder.push_back(r);
          continue;
        }
        slot[r][di] = found;
        const PlannedTensor& t = plan.tensors[found];
        if (t.dtype != d.dtype)
          throw MismatchError("tensor " + qualified(d.group, d.name) + " has dtype " +
                              std::string(dtype_name(t.dtype)) + " on rank " + std::to_string(first_holder[found]) +
                              " but " + std::string(dtype_name(d.dtype)) + " on rank " + std::to_string(r));
        if (t.shape != d.shape)
          throw MismatchError("tensor " + qualified(d.group, d.name) + " has global shape " + shape_to_string(t.shape) +
                              " on rank " + std::to_string(first_holder[found]) + " but " + shape_to_string(d.shape) +
                              " on rank " + std::to_string(r));
      }
    }
  }

  // Distinct pieces per tensor with their holders (room for as many as the ranks declare).
  std::vector<std::uint32_t> declared_pieces(plan.tensors.size(), 0);
  for (int r = 0; r < world; ++r)
    for (std::size_t di = 0; di < decls_per_rank[r].size(); ++di)
      declared_pieces[slot[r][di]] += static_cast<std::uint32_t>(decls_per_rank[r][di].segments.size());
  for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti) plan.tensors[ti].pieces.reserve(declared_pieces[ti]);
  std::vector<Candidate> all_pieces;
  all_pieces.reserve(std::accumulate(declared_pieces.begin(), declared_pieces.end(), std::size_t{0}));
  for (int r = 0; r < world; ++r) {
    for (std::size_t di = 0; di < decls_per_rank[r].size(); ++di) {
      auto& d = decls_per_rank[r][di];
      PlannedTensor& t = plan.tensors[slot[r][di]];
      for (std::size_t si = 0; si < d.segments.size(); ++si) {
        Block& b = d.segments[si];
        auto it = std::find_if(t.pieces.begin(), t.pieces.end(), [&](const PlannedPiece& p) { return p.block == b; });
        if (it == t.pieces.end()) {
          PlannedPiece& p = t.pieces.emplace_back();
          p.bytes = static_cast<std::uint64_t>(block_volume(b)) * dtype_size(d.dtype);
          p.block = std::move(b);
          p.writer = -1;
          it = std::prev(t.pieces.end());
        }
        it->holders.push_back(r);
        it->holder_locations.emplace_back(static_cast<int>(di), static_cast<int>(si));
      }
    }
  }

  // Every element must be held by some rank, or the file would hold garbage there.
  for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti) {
    const PlannedTensor& t = plan.tensors[ti];
    if (coverage == Coverage::Required && !tiles_by_rows(t.shape, t.pieces)) {
      const std::int64_t total = element_count(t.shape);
      std::vector<Block> blocks;
      for (const auto& p : t.pieces) blocks.push_back(p.block);
      const auto covered = covered_elements(t.shape, blocks);
      if (covered && *covered != total)
        throw UsageError("tensor " + qualified(t.group, t.name) + " of shape " + shape_to_string(t.shape) +
                         ": the ranks' pieces cover " + std::to_string(*covered) + " of its " + std::to_string(total) +
                         " elements; every element must be held by some rank");
    }
    for (std::size_t pi = 0; pi < t.pieces.size(); ++pi)
      all_pieces.push_back({t.pieces[pi].bytes, static_cast<std::uint32_t>(ti), static_cast<std::uint32_t>(pi)});
  }

  assign_writers(plan, all_pieces);
  return plan;
}

WritePlan make_read_plan(const std::vector<std::vector<StoredRequest>>& requests_per_rank, std::size_t stored_tensors,
                         const std::function<void(std::size_t, PlannedTensor&)>& describe) {
  const int world = static_cast<int>(requests_per_rank.size());
  WritePlan plan;
  plan.bytes_per_rank.assign(world, 0);
  // slot[position]: the planned tensor of a stored tensor, kNone while no rank asked for it.
  constexpr std::uint32_t kNone = UINT32_MAX;
  std::vector<std::uint32_t> slot(stored_tensors, kNone);
  std::vector<std::uint32_t> declared_pieces(stored_tensors, 0);
  for (const auto& requests : requests_per_rank)
    for (const auto& q : requests) {
      slot[q.tensor] = 0;
      declared_pieces[q.tensor] += static_cast<std::uint32_t>(q.segments.size());
    }
  std::size_t piece_count = 0;
  for (std::size_t i = 0; i < stored_tensors; ++i) {
    if (slot[i] == kNone) continue;
    slot[i] = static_cast<std::uint32_t>(plan.tensors.size());
    PlannedTensor& t = plan.tensors.emplace_back();
    t.stored = i;
    describe(i, t);
    t.pieces.reserve(declared_pieces[i]);
    piece_count += declared_pieces[i];
  }
  std::vector<Candidate> all_pieces;
  all_pieces.reserve(piece_count);
  for (int r = 0; r < world; ++r) {
    const auto& requests = requests_per_rank[r];
    for (std::size_t di = 0; di < requests.size(); ++di) {
      PlannedTensor& t = plan.tensors[slot[requests[di].tensor]];
      for (std::size_t si = 0; si < requests[di].segments.size(); ++si) {
        const Block& b = requests[di].segments[si];
        auto it = std::find_if(t.pieces.begin(), t.pieces.end(), [&](const PlannedPiece& p) { return p.block == b; });
        if (it == t.pieces.end()) {
          PlannedPiece& p = t.pieces.emplace_back();
          p.block = b;
          p.bytes = static_cast<std::uint64_t>(block_volume(b)) * dtype_size(t.dtype);
          p.writer = -1;
          it = std::prev(t.pieces.end());
        }
        it->holders.push_back(r);
        it->holder_locations.emplace_back(static_cast<int>(di), static_cast<int>(si));
      }
    }
  }
  for (std::size_t ti = 0; ti < plan.tensors.size(); ++ti)
    for (std::size_t pi = 0; pi < plan.tensors[ti].pieces.size(); ++pi)
      all_pieces.push_back(
          {plan.tensors[ti].pieces[pi].bytes, static_cast<std::uint32_t>(ti), static_cast<std::uint32_t>(pi)});
  assign_writers(plan, all_pieces);
  return plan;
}

// A compact length-prefixed binary form (host byte order: it only travels between the ranks
// of one job): u32 count, then per declaration i32 group, u32 name length, name bytes,
// i32 dtype, u32 rank, rank x i64 shape, u32 segments, per segment u32 rank, rank x i64
// offsets, rank x i64 counts. JSON cost more than the rest of planning at 10,000 tensors.
namespace {

class DeclWriter {
 public:
  explicit DeclWriter(std::string& out) : out_(out) {}
  template <class T>
  void put(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_count(std::size_t n) {
    if (n > UINT32_MAX) throw Error("internal: tensor declaration too large to encode");
    put(static_cast<std::uint32_t>(n));
  }
  void put_ints(const std::vector<std::int64_t>& v) {
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(std::int64_t));
  }

 private:
  std::string& out_;
};

class DeclReader {
 public:
  explicit DeclReader(const std::string& in) : in_(in) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_string(std::uint32_t n) {
    need(n);
    std::string s(in_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::int64_t> get_ints(std::uint32_t n) {
    if (n > (in_.size() - pos_) / sizeof(std::int64_t)) truncated();
    std::vector<std::int64_t> v(n);
    if (n == 0) return v;  // memcpy to the null data() of an empty vector is undefined
    std::memcpy(v.data(), in_.data() + pos_, n * sizeof(std::int64_t));
    pos_ += n * sizeof(std::int64_t);
    return v;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  void need(std::size_t n) {
    if (n > in_.size() - pos_) truncated();
  }
  [[noreturn]] static void truncated() { throw FormatError("tensor declarations: truncated encoding"); }
  const std::string& in_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string encode_decls(const std::vector<TensorDecl>& decls) {
  std::string out;
  std::size_t estimate = 4;
  for (const auto& d : decls) estimate += 24 + d.name.size() + 8 * d.shape.size() * (1 + 2 * d.segments.size());
  out.reserve(estimate);
  DeclWriter w(out);
  w.put_count(decls.size());
  for (const auto& d : decls) {
    w.put(static_cast<std::int32_t>(d.group));
    w.put_count(d.name.size());
    out.append(d.name);
    w.put(static_cast<std::int32_t>(d.dtype));
    w.put_count(d.shape.size());
    w.put_ints(d.shape);
    w.put_count(d.segments.size());
    for (const auto& s : d.segments) {
      if (s.offset.size() != s.count.size()) throw Error("internal: block with offset and count of different ranks");
      w.put_count(s.offset.size());
      w.put_ints(s.offset);
      w.put_ints(s.count);
    }
  }
  return out;
}

std::vector<TensorDecl> decode_decls(const std::string& bytes) {
  DeclReader r(bytes);
  const auto n = r.get<std::uint32_t>();
  // Each declaration takes at least 20 bytes: a count beyond that is damage, not a reason to allocate.
  if (n > bytes.size() / 20) throw FormatError("tensor declarations: count " + std::to_string(n) + " exceeds the data");
  std::vector<TensorDecl> decls(n);
  for (auto& d : decls) {
    d.group = r.get<std::int32_t>();
    if (d.group < 0 || d.group >= 3) throw FormatError("tensor declarations: bad group " + std::to_string(d.group));
    d.name = r.get_string(r.get<std::uint32_t>());
    const auto dtype = r.get<std::int32_t>();
    if (dtype < 0 || dtype >= static_cast<std::int32_t>(std::size(kAllDTypes)))
      throw FormatError("tensor declarations: bad dtype " + std::to_string(dtype));
    d.dtype = static_cast<DType>(dtype);
    d.shape = r.get_ints(r.get<std::uint32_t>());
    const auto segments = r.get<std::uint32_t>();
    if (segments > bytes.size() / 4) throw FormatError("tensor declarations: truncated encoding");
    d.segments.resize(segments);
    for (auto& s : d.segments) {
      const auto rank = r.get<std::uint32_t>();
      s.offset = r.get_ints(rank);
      s.count = r.get_ints(rank);
    }
  }
  if (!r.done()) throw FormatError("tensor declarations: trailing bytes after the encoding");
  return decls;
}

// u32 count, then per request u32 position, u32 segments, per segment u32 rank, rank x i64
// offsets, rank x i64 counts.
std::string encode_stored_requests(const std::vector<StoredRequest>& requests) {
  std::string out;
  std::size_t estimate = 4;
  for (const auto& q : requests) {
    estimate += 8;
    for (const auto& s : q.segments) estimate += 4 + 16 * s.offset.size();
  }
  out.reserve(estimate);
  DeclWriter w(out);
  w.put_count(requests.size());
  for (const auto& q : requests) {
    w.put(q.tensor);
    w.put_count(q.segments.size());
    for (const auto& s : q.segments) {
      if (s.offset.size() != s.count.size()) throw Error("internal: block with offset and count of different ranks");
      w.put_count(s.offset.size());
      w.put_ints(s.offset);
      w.put_ints(s.count);
    }
  }
  return out;
}

std::vector<StoredRequest> decode_stored_requests(const std::string& bytes, std::size_t stored_tensors) {
  DeclReader r(bytes);
  const auto n = r.get<std::uint32_t>();
  // Each request takes at least 8 bytes: a count beyond that is damage, not a reason to allocate.
  if (n > bytes.size() / 8) throw FormatError("load requests: count " + std::to_string(n) + " exceeds the data");
  std::vector<StoredRequest> requests(n);
  for (auto& q : requests) {
    q.tensor = r.get<std::uint32_t>();
    if (q.tensor >= stored_tensors)
      throw FormatError("load requests: tensor " + std::to_string(q.tensor) + " beyond the index's " +
                        std::to_string(stored_tensors));
    const auto segments = r.get<std::uint32_t>();
    if (segments > bytes.size() / 4) throw FormatError("load requests: truncated encoding");
    q.segments.resize(segments);
    for (auto& s : q.segments) {
      const auto rank = r.get<std::uint32_t>();
      s.offset = r.get_ints(rank);
      s.count = r.get_ints(rank);
    }
  }
  if (!r.done()) throw FormatError("load requests: trailing bytes after the encoding");
  return requests;
}

}  // namespace ckptio::detail
