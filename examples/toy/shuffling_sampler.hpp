// A shuffling sampler: each epoch visits the dataset in a permutation seeded by the epoch.
// Its state is small (seed, epoch, position): the permutation is recomputed on load.
#pragma once

#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "toy/hashing.hpp"

namespace toy {

class ShufflingSampler {
 public:
  // Batches of `batch_size` samples; the tail of an epoch that does not fill a batch is dropped.
  ShufflingSampler(std::int64_t dataset_size, std::int64_t batch_size, std::uint64_t seed)
      : dataset_size_(dataset_size), batch_size_(batch_size), seed_(seed) {
    shuffle();
  }

  // The sample indices of the next global batch; afterwards the sampler points past it
  // (into the next epoch when this batch was the epoch's last).
  std::vector<std::int64_t> next_batch() {
    std::vector<std::int64_t> batch(order_.begin() + position_, order_.begin() + position_ + batch_size_);
    position_ += batch_size_;
    if (position_ + batch_size_ > dataset_size_) {
      ++epoch_;
      position_ = 0;
      shuffle();
    }
    return batch;
  }

  std::int64_t epoch() const { return epoch_; }
  // Batches already drawn in the current epoch.
  std::int64_t batch_in_epoch() const { return position_ / batch_size_; }

  nlohmann::json state() const {
    return {{"seed", seed_},
            {"dataset_size", dataset_size_},
            {"batch_size", batch_size_},
            {"epoch", epoch_},
            {"position", position_}};
  }

  void load_state(const nlohmann::json& state) {
    if (state.at("dataset_size").get<std::int64_t>() != dataset_size_ ||
        state.at("batch_size").get<std::int64_t>() != batch_size_) {
      throw std::runtime_error("sampler state is for another dataset or batch size: " + state.dump());
    }
    seed_ = state.at("seed").get<std::uint64_t>();
    epoch_ = state.at("epoch").get<std::int64_t>();
    position_ = state.at("position").get<std::int64_t>();
    shuffle();
  }

 private:
  // Fisher-Yates with counter-based draws, so the permutation depends only on (seed, epoch).
  void shuffle() {
    order_.resize(static_cast<std::size_t>(dataset_size_));
    std::iota(order_.begin(), order_.end(), std::int64_t{0});
    for (std::int64_t i = dataset_size_ - 1; i > 0; --i) {
      const auto draw = mix_keys({seed_, static_cast<std::uint64_t>(epoch_), static_cast<std::uint64_t>(i)});
      const auto j = static_cast<std::int64_t>(draw % static_cast<std::uint64_t>(i + 1));
      std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(j)]);
    }
  }

  std::int64_t dataset_size_;
  std::int64_t batch_size_;
  std::uint64_t seed_;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;
  std::vector<std::int64_t> order_;
};

}  // namespace toy
