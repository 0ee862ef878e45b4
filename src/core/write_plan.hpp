// The write plan: from every rank's description of its shards, decide which rank writes
// each distinct piece. Pieces held by several ranks (replicas) are written exactly once,
// by the holder with the fewest bytes assigned so far (largest pieces first), so writers
// are balanced by bytes. Every rank computes the same plan from the same gathered input.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ckptio/dtype.hpp"
#include "ckptio/shard.hpp"

namespace ckptio::detail {

// What one rank holds of one tensor.
struct TensorDecl {
  int group = 0;  // index into kGroupNames
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::vector<Block> segments;  // non-empty segments of the rank's piece, in memory order
};

struct PlannedPiece {
  Block block;
  int writer = 0;          // rank that writes it
  int writer_decl = 0;     // index of the tensor in the writer's declarations
  int writer_segment = 0;  // index of the segment in that declaration
  std::uint64_t bytes = 0;
  std::vector<int> holders;  // every rank that holds exactly this piece (ascending)
  // Parallel to holders: (declaration index, segment index) of the piece in that rank's input.
  std::vector<std::pair<int, int>> holder_locations;
};

struct PlannedTensor {
  int group = 0;
  std::string name;  // empty in a read plan (make_read_plan): see `stored`
  DType dtype = DType::F32;
  Shape shape;
  std::vector<PlannedPiece> pieces;
  std::size_t stored = 0;  // read plans: the tensor's position in the file's index
};

struct WritePlan {
  std::vector<PlannedTensor> tensors;         // file order: by group, then first appearance
  std::vector<std::uint64_t> bytes_per_rank;  // bytes each rank writes
};

// Whether the ranks' pieces must cover every element of each tensor: a save must write every
// element; a load reads only what the ranks ask for.
enum class Coverage { Required, Partial };

// Throws MismatchError when ranks disagree on a tensor's dtype or shape, UsageError when
// the ranks' pieces do not cover a tensor (Coverage::Required). Deterministic: the same
// input gives the same plan (and the same error) on every rank. Also serves loads as a read
// plan: each distinct piece is read once, by its "writer", and sent to its other holders.
// Takes the declarations by value: their names and blocks move into the plan.
WritePlan make_write_plan(std::vector<std::vector<TensorDecl>> decls_per_rank, Coverage coverage = Coverage::Required);

// What one rank asks to load of one stored tensor, which is named by its position in the
// file's index (the same on every rank): no names travel or get hashed.
struct StoredRequest {
  std::uint32_t tensor = 0;     // position in the index
  std::vector<Block> segments;  // non-empty segments of the rank's piece, in memory order
};

// The read plan of a load from every rank's requests: one tensor per requested stored
// tensor, in index order, `stored` set and `name` left empty; `describe(position, tensor)`
// fills in its group and dtype. Pieces as in make_write_plan (Coverage::Partial): each
// distinct piece is read once, by its "writer", and sent to its other holders. Every rank
// computes the same plan from the same gathered input.
WritePlan make_read_plan(const std::vector<std::vector<StoredRequest>>& requests_per_rank, std::size_t stored_tensors,
                         const std::function<void(std::size_t, PlannedTensor&)>& describe);

// Serialisation of one rank's declarations for MPI exchange.
std::string encode_decls(const std::vector<TensorDecl>& decls);
std::vector<TensorDecl> decode_decls(const std::string& bytes);
// The same for load requests; FormatError for a position at or beyond `stored_tensors`.
std::string encode_stored_requests(const std::vector<StoredRequest>& requests);
std::vector<StoredRequest> decode_stored_requests(const std::string& bytes, std::size_t stored_tensors);

}  // namespace ckptio::detail
