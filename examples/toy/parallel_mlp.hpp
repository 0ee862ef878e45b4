// A two-layer perceptron y = W2 tanh(W1 x + b1) + b2, trained with tensor parallelism on
// layer1 and data parallelism on layer2.
//
// Layer1 is split by rows: rank r holds rows split_range(hidden, P, r) of W1 and b1, computes
// those hidden units for the whole global batch, and the ranks all-gather the activations.
// Layer2 is replicated: rank r evaluates the loss on its share split_range(batch, P, r) of the
// batch, and the layer2 gradients are summed over ranks with MPI_Allreduce.
#pragma once

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "toy/hashing.hpp"
#include "toy/partition.hpp"
#include "toy/synthetic_data.hpp"

namespace toy {

// One rank's part of the model. The same layout holds the gradients and the EMA copy.
struct MlpShards {
  std::int64_t hidden = 0;
  Range rows;             // rows of layer1 held by this rank
  std::vector<float> w1;  // rows.size() x kInputs, row-major: a row block of the global W1
  std::vector<float> b1;  // rows.size(): a block of the global b1
  std::vector<float> w2;  // kOutputs x hidden, replicated
  std::vector<float> b2;  // kOutputs, replicated

  static MlpShards zeros(std::int64_t hidden, Range rows) {
    MlpShards shards;
    shards.hidden = hidden;
    shards.rows = rows;
    shards.w1.assign(static_cast<std::size_t>(rows.size() * kInputs), 0.0f);
    shards.b1.assign(static_cast<std::size_t>(rows.size()), 0.0f);
    shards.w2.assign(static_cast<std::size_t>(kOutputs * hidden), 0.0f);
    shards.b2.assign(static_cast<std::size_t>(kOutputs), 0.0f);
    return shards;
  }
};

// Initial weights computed from each element's global index, so that every world size
// starts from the same model. Biases start at zero.
inline MlpShards initial_parameters(std::int64_t hidden, Range rows) {
  constexpr std::uint64_t kInitSeed = 0x1417;
  MlpShards params = MlpShards::zeros(hidden, rows);
  const float w1_scale = 1.0f / std::sqrt(static_cast<float>(kInputs));
  for (std::int64_t j = 0; j < rows.size(); ++j) {
    for (std::int64_t k = 0; k < kInputs; ++k) {
      const auto global_index = static_cast<std::uint64_t>((rows.begin + j) * kInputs + k);
      params.w1[static_cast<std::size_t>(j * kInputs + k)] =
          w1_scale * uniform_pm1(mix_keys({kInitSeed, 1, global_index}));
    }
  }
  const float w2_scale = 1.0f / std::sqrt(static_cast<float>(hidden));
  for (std::size_t i = 0; i < params.w2.size(); ++i) {
    params.w2[i] = w2_scale * uniform_pm1(mix_keys({kInitSeed, 2, i}));
  }
  return params;
}

// Forward and backward pass over one global batch of `global_batch` samples. x_local and
// y_local hold this rank's share split_range(global_batch, P, rank) of the inputs and targets.
// Overwrites `grads` with the gradients of the mean loss 0.5 * |y_pred - y|^2 over the global
// batch and returns that loss. Collective over comm.
inline double forward_backward(const MlpShards& params, const std::vector<float>& x_local,
                               const std::vector<float>& y_local, std::int64_t global_batch, MlpShards& grads,
                               MPI_Comm comm) {
  int world_size = 0;
  int rank = 0;
  MPI_Comm_size(comm, &world_size);
  MPI_Comm_rank(comm, &rank);
  const std::int64_t batch = global_batch;
  const std::int64_t hidden = params.hidden;
  const std::int64_t my_rows = params.rows.size();
  const Range my_samples = split_range(batch, world_size, rank);

  // Layer1 (tensor parallel) needs the whole batch: gather every rank's inputs.
  std::vector<float> x(static_cast<std::size_t>(batch * kInputs));
  const GathervLayout x_layout = gatherv_layout(batch, world_size, kInputs);
  MPI_Allgatherv(x_local.data(), static_cast<int>(x_local.size()), MPI_FLOAT, x.data(), x_layout.counts.data(),
                 x_layout.displacements.data(), MPI_FLOAT, comm);

  // My hidden units for every sample, stored unit-major (act[j * batch + b]) so that the
  // ranks' row blocks concatenate into the full activation matrix.
  std::vector<float> my_act(static_cast<std::size_t>(my_rows * batch));
  for (std::int64_t j = 0; j < my_rows; ++j) {
    for (std::int64_t b = 0; b < batch; ++b) {
      float z = params.b1[j];
      for (std::int64_t k = 0; k < kInputs; ++k) z += params.w1[j * kInputs + k] * x[b * kInputs + k];
      my_act[j * batch + b] = std::tanh(z);
    }
  }
  std::vector<float> act(static_cast<std::size_t>(hidden * batch));
  const GathervLayout act_layout = gatherv_layout(hidden, world_size, batch);
  MPI_Allgatherv(my_act.data(), static_cast<int>(my_act.size()), MPI_FLOAT, act.data(), act_layout.counts.data(),
                 act_layout.displacements.data(), MPI_FLOAT, comm);

  // Layer2 (data parallel) on my share of the batch.
  grads = MlpShards::zeros(hidden, params.rows);
  std::vector<float> d_act_local(static_cast<std::size_t>(my_samples.size() * hidden), 0.0f);
  double loss_sum = 0.0;
  for (std::int64_t i = 0; i < my_samples.size(); ++i) {
    const std::int64_t b = my_samples.begin + i;
    for (std::int64_t o = 0; o < kOutputs; ++o) {
      float y_pred = params.b2[o];
      for (std::int64_t j = 0; j < hidden; ++j) y_pred += params.w2[o * hidden + j] * act[j * batch + b];
      const float diff = y_pred - y_local[i * kOutputs + o];
      loss_sum += 0.5 * diff * diff;
      const float d_out = diff / static_cast<float>(batch);
      grads.b2[o] += d_out;
      for (std::int64_t j = 0; j < hidden; ++j) {
        grads.w2[o * hidden + j] += d_out * act[j * batch + b];
        d_act_local[i * hidden + j] += params.w2[o * hidden + j] * d_out;
      }
    }
  }
  // Each rank's layer2 gradient is already scaled by 1/global_batch: the sum is the mean.
  MPI_Allreduce(MPI_IN_PLACE, grads.w2.data(), static_cast<int>(grads.w2.size()), MPI_FLOAT, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, grads.b2.data(), static_cast<int>(grads.b2.size()), MPI_FLOAT, MPI_SUM, comm);

  // Layer1's gradient for my rows needs the activation gradients of every sample.
  std::vector<float> d_act(static_cast<std::size_t>(batch * hidden));
  const GathervLayout d_act_layout = gatherv_layout(batch, world_size, hidden);
  MPI_Allgatherv(d_act_local.data(), static_cast<int>(d_act_local.size()), MPI_FLOAT, d_act.data(),
                 d_act_layout.counts.data(), d_act_layout.displacements.data(), MPI_FLOAT, comm);
  for (std::int64_t j = 0; j < my_rows; ++j) {
    const std::int64_t unit = params.rows.begin + j;
    for (std::int64_t b = 0; b < batch; ++b) {
      const float a = my_act[j * batch + b];
      const float d_z = d_act[b * hidden + unit] * (1.0f - a * a);
      grads.b1[j] += d_z;
      for (std::int64_t k = 0; k < kInputs; ++k) grads.w1[j * kInputs + k] += d_z * x[b * kInputs + k];
    }
  }

  double loss_total = 0.0;
  MPI_Allreduce(&loss_sum, &loss_total, 1, MPI_DOUBLE, MPI_SUM, comm);
  return loss_total / static_cast<double>(batch);
}

}  // namespace toy
