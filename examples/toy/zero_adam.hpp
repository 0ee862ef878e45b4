// Adam with its state sharded across ranks.
//
// Layer1's parameters are already split by rows (tensor parallel): their moments live with
// the row block they belong to. Layer2 is replicated, so its moments are sharded as ZeRO
// stage 1 does: rank r owns the flat range split_range(elements, P, r) of each flattened
// tensor, updates only that range of the parameter, and MPI_Allgatherv re-assembles the whole
// parameter on every rank.
#pragma once

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "toy/parallel_mlp.hpp"
#include "toy/partition.hpp"

namespace toy {

// Adam's moments for the elements of one tensor this rank updates.
struct Moments {
  std::vector<float> exp_avg;
  std::vector<float> exp_avg_sq;
  explicit Moments(std::int64_t elements)
      : exp_avg(static_cast<std::size_t>(elements), 0.0f), exp_avg_sq(static_cast<std::size_t>(elements), 0.0f) {}
};

class ZeroAdam {
 public:
  static constexpr double kBeta1 = 0.9;
  static constexpr double kBeta2 = 0.999;
  static constexpr double kEpsilon = 1e-8;

  // Collective over comm only in step(); the constructor just records the layout.
  ZeroAdam(const MlpShards& params, MPI_Comm comm)
      : w2_range(split_range(static_cast<std::int64_t>(params.w2.size()), world_size_of(comm), rank_of(comm))),
        b2_range(split_range(static_cast<std::int64_t>(params.b2.size()), world_size_of(comm), rank_of(comm))),
        w1(static_cast<std::int64_t>(params.w1.size())),
        b1(static_cast<std::int64_t>(params.b1.size())),
        w2(w2_range.size()),
        b2(b2_range.size()),
        comm_(comm) {}

  // One Adam step with learning rate lr; step_number counts optimizer steps from 1 (bias
  // correction). Collective over comm.
  void step(MlpShards& params, const MlpShards& grads, double lr, std::int64_t step_number) {
    const double correction1 = 1.0 - std::pow(kBeta1, static_cast<double>(step_number));
    const double correction2 = 1.0 - std::pow(kBeta2, static_cast<double>(step_number));
    const auto update = [&](float* param, const float* grad, Moments& moments) {
      for (std::size_t i = 0; i < moments.exp_avg.size(); ++i) {
        float& m = moments.exp_avg[i];
        float& v = moments.exp_avg_sq[i];
        m = static_cast<float>(kBeta1 * m + (1.0 - kBeta1) * grad[i]);
        v = static_cast<float>(kBeta2 * v + (1.0 - kBeta2) * grad[i] * grad[i]);
        const double m_hat = m / correction1;
        const double v_hat = v / correction2;
        param[i] = static_cast<float>(param[i] - lr * m_hat / (std::sqrt(v_hat) + kEpsilon));
      }
    };
    update(params.w1.data(), grads.w1.data(), w1);
    update(params.b1.data(), grads.b1.data(), b1);
    update(params.w2.data() + w2_range.begin, grads.w2.data() + w2_range.begin, w2);
    update(params.b2.data() + b2_range.begin, grads.b2.data() + b2_range.begin, b2);
    allgather_in_place(params.w2);
    allgather_in_place(params.b2);
  }

  Range w2_range;  // the flat range of layer2.weight this rank owns
  Range b2_range;  // the flat range of layer2.bias this rank owns
  Moments w1;      // layer1.weight: the row block's moments
  Moments b1;      // layer1.bias: the row block's moments
  Moments w2;      // layer2.weight: moments of w2_range only
  Moments b2;      // layer2.bias: moments of b2_range only

 private:
  static int world_size_of(MPI_Comm comm) {
    int size = 0;
    MPI_Comm_size(comm, &size);
    return size;
  }
  static int rank_of(MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    return rank;
  }

  // Every rank contributes the flat range it updated; afterwards all hold the whole tensor.
  void allgather_in_place(std::vector<float>& tensor) const {
    const GathervLayout layout =
        gatherv_layout(static_cast<std::int64_t>(tensor.size()), world_size_of(comm_), /*item_size=*/1);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, tensor.data(), layout.counts.data(), layout.displacements.data(),
                   MPI_FLOAT, comm_);
  }

  MPI_Comm comm_;
};

}  // namespace toy
