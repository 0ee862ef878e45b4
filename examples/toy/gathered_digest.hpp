// A hash of distributed tensors that does not depend on how they are split across ranks:
// each tensor is gathered whole to rank 0 and hashed there.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "toy/hashing.hpp"

namespace toy {

class GatheredDigest {
 public:
  explicit GatheredDigest(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_size_);
  }

  // Adds one tensor. Each rank passes its contiguous part of the flattened tensor, in rank
  // order (a row block, a flat range; a replicated tensor: rank 0 passes all of it and the
  // others nothing). Collective over comm.
  void add(std::span<const float> local_part) {
    const int local_count = static_cast<int>(local_part.size());
    std::vector<int> counts(static_cast<std::size_t>(world_size_));
    MPI_Gather(&local_count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm_);
    std::vector<int> displacements(counts.size(), 0);
    std::vector<float> whole;
    if (rank_ == 0) {
      for (std::size_t r = 1; r < counts.size(); ++r) displacements[r] = displacements[r - 1] + counts[r - 1];
      whole.resize(static_cast<std::size_t>(displacements.back() + counts.back()));
    }
    MPI_Gatherv(local_part.data(), local_count, MPI_FLOAT, whole.data(), counts.data(), displacements.data(), MPI_FLOAT,
                0, comm_);
    if (rank_ == 0) hash_.add(whole.data(), whole.size() * sizeof(float));
  }

  // Same as add() for a tensor every rank holds whole.
  void add_replicated(std::span<const float> whole) { add(rank_ == 0 ? whole : whole.first(0)); }

  // 16 hex digits; meaningful on rank 0 only.
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash_.value()));
    return text;
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int world_size_ = 1;
  Fnv1a hash_;
};

}  // namespace toy
