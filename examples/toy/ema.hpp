// An exponential moving average of the model's weights, kept in the model's own layout.
#pragma once

#include <vector>

#include "toy/parallel_mlp.hpp"

namespace toy {

// ema = decay * ema + (1 - decay) * params, on this rank's part of both. Purely local: the
// replicated layer2 is averaged identically on every rank.
inline void update_ema(MlpShards& ema, const MlpShards& params, float decay) {
  const auto blend = [decay](std::vector<float>& average, const std::vector<float>& value) {
    for (std::size_t i = 0; i < average.size(); ++i) average[i] = decay * average[i] + (1.0f - decay) * value[i];
  };
  blend(ema.w1, params.w1);
  blend(ema.b1, params.b1);
  blend(ema.w2, params.w2);
  blend(ema.b2, params.b2);
}

}  // namespace toy
