#include "core/write_plan.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ckptio/error.hpp"
#include "ckptio/snapshot.hpp"
#include "core/piece_math.hpp"

namespace ckptio::detail {
namespace {

std::string qualified(int group, const std::string& name) { return std::string(kGroupNames[group]) + "/" + name; }

}  // namespace

WritePlan make_write_plan(const std::vector<std::vector<TensorDecl>>& decls_per_rank, Coverage coverage) {
  const int world = static_cast<int>(decls_per_rank.size());
  WritePlan plan;
  plan.bytes_per_rank.assign(world, 0);

  // Tensor order: by group; within a group, rank 0's order, then tensors only other ranks
  // hold, in rank order.
  std::map<std::pair<int, std::string>, std::size_t> index;
  std::vector<int> first_holder;
  for (int group = 0; group < 3; ++group) {
    for (int r = 0; r < world; ++r) {
      for (const auto& d : decls_per_rank[r]) {
        if (d.group != group) continue;
        auto [it, inserted] = index.emplace(std::make_pair(d.group, d.name), plan.tensors.size());
        if (inserted) {
          plan.tensors.push_back(PlannedTensor{d.group, d.name, d.dtype, d.shape, {}});
          first_holder.push_back(r);
          continue;
        }
        const PlannedTensor& t = plan.tensors[it->second];
        if (t.dtype != d.dtype)
          throw MismatchError("tensor " + qualified(d.group, d.name) + " has dtype " +
                              std::string(dtype_name(t.dtype)) + " on rank " +
                              std::to_string(first_holder[it->second]) + " but " + std::string(dtype_name(d.dtype)) +
                              " on rank " + std::to_string(r));
        if (t.shape != d.shape)
          throw MismatchError("tensor " + qualified(d.group, d.name) + " has global shape " + shape_to_string(t.shape) +
                              " on rank " + std::to_string(first_holder[it->second]) + " but " +
                              shape_to_string(d.shape) + " on rank " + std::to_string(r));
      }
    }
  }

  // Distinct pieces per tensor with their holders.
  struct Candidate {
    std::size_t tensor;
    std::size_t piece;
  };
  std::vector<Candidate> all_pieces;
  for (int r = 0; r < world; ++r) {
    for (std::size_t di = 0; di < decls_per_rank[r].size(); ++di) {
      const auto& d = decls_per_rank[r][di];
      PlannedTensor& t = plan.tensors[index.at({d.group, d.name})];
      for (std::size_t si = 0; si < d.segments.size(); ++si) {
        const Block& b = d.segments[si];
        auto it = std::find_if(t.pieces.begin(), t.pieces.end(), [&](const PlannedPiece& p) { return p.block == b; });
        if (it == t.pieces.end()) {
          PlannedPiece p;
          p.block = b;
          p.bytes = static_cast<std::uint64_t>(block_volume(b)) * dtype_size(d.dtype);
          p.writer = -1;
          t.pieces.push_back(std::move(p));
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
    const std::int64_t total = element_count(t.shape);
    std::vector<Block> blocks;
    for (const auto& p : t.pieces) blocks.push_back(p.block);
    const auto covered = coverage == Coverage::Required ? covered_elements(t.shape, blocks) : std::nullopt;
    if (covered && *covered != total)
      throw UsageError("tensor " + qualified(t.group, t.name) + " of shape " + shape_to_string(t.shape) +
                       ": the ranks' pieces cover " + std::to_string(*covered) + " of its " + std::to_string(total) +
                       " elements; every element must be held by some rank");
    for (std::size_t pi = 0; pi < t.pieces.size(); ++pi) all_pieces.push_back({ti, pi});
  }

  // Largest first, each to its least-loaded holder (ties: lowest rank).
  std::stable_sort(all_pieces.begin(), all_pieces.end(), [&](const Candidate& a, const Candidate& b) {
    return plan.tensors[a.tensor].pieces[a.piece].bytes > plan.tensors[b.tensor].pieces[b.piece].bytes;
  });
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

  return plan;
}

std::string encode_decls(const std::vector<TensorDecl>& decls) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& d : decls) {
    nlohmann::json segs = nlohmann::json::array();
    for (const auto& s : d.segments) segs.push_back({s.offset, s.count});
    arr.push_back({d.group, d.name, static_cast<int>(d.dtype), d.shape, std::move(segs)});
  }
  auto bytes = nlohmann::json::to_msgpack(arr);
  return std::string(bytes.begin(), bytes.end());
}

std::vector<TensorDecl> decode_decls(const std::string& bytes) {
  const auto arr = nlohmann::json::from_msgpack(bytes);
  std::vector<TensorDecl> decls;
  decls.reserve(arr.size());
  for (const auto& e : arr) {
    TensorDecl d;
    d.group = e[0].get<int>();
    d.name = e[1].get<std::string>();
    d.dtype = static_cast<DType>(e[2].get<int>());
    d.shape = e[3].get<Shape>();
    for (const auto& s : e[4])
      d.segments.push_back(Block{s[0].get<std::vector<std::int64_t>>(), s[1].get<std::vector<std::int64_t>>()});
    decls.push_back(std::move(d));
  }
  return decls;
}

}  // namespace ckptio::detail
