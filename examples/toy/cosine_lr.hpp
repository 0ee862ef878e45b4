// A learning-rate schedule: linear warm-up, then cosine decay to a floor.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include <nlohmann/json.hpp>

namespace toy {

class CosineLr {
 public:
  CosineLr(double base_lr, double min_lr, std::int64_t warmup_steps, std::int64_t total_steps)
      : base_lr_(base_lr), min_lr_(min_lr), warmup_steps_(warmup_steps), total_steps_(total_steps) {}

  // The rate for the next optimizer step.
  double lr() const {
    const auto step = static_cast<double>(last_step_ + 1);
    if (last_step_ < warmup_steps_) return base_lr_ * step / static_cast<double>(warmup_steps_);
    const double decay_steps = static_cast<double>(std::max<std::int64_t>(total_steps_ - warmup_steps_, 1));
    const double progress = std::min(1.0, (step - static_cast<double>(warmup_steps_)) / decay_steps);
    return min_lr_ + 0.5 * (base_lr_ - min_lr_) * (1.0 + std::cos(std::numbers::pi * progress));
  }

  // Called once after every optimizer step.
  void step() { ++last_step_; }

  // The schedule's length is part of its state (as in PyTorch's schedulers): a resumed run
  // follows the curve the checkpointed run was on, whatever --steps it is given.
  nlohmann::json state() const {
    return {{"base_lr", base_lr_},
            {"min_lr", min_lr_},
            {"warmup_steps", warmup_steps_},
            {"total_steps", total_steps_},
            {"last_step", last_step_}};
  }

  void load_state(const nlohmann::json& state) {
    base_lr_ = state.at("base_lr").get<double>();
    min_lr_ = state.at("min_lr").get<double>();
    warmup_steps_ = state.at("warmup_steps").get<std::int64_t>();
    total_steps_ = state.at("total_steps").get<std::int64_t>();
    last_step_ = state.at("last_step").get<std::int64_t>();
  }

 private:
  double base_lr_;
  double min_lr_;
  std::int64_t warmup_steps_;
  std::int64_t total_steps_;
  std::int64_t last_step_ = 0;  // optimizer steps taken
};

}  // namespace toy
