// train_toy: trains a small two-layer perceptron on synthetic data with MPI ranks and
// checkpoints everything it needs to resume with ckptio, so that a run that is killed and
// resumed ends exactly where an uninterrupted run ends.
//
//   mpiexec -n 2 train_toy --ckpt-dir runs/toy --steps 30 --ckpt-every 10
//   mpiexec -n 3 train_toy --ckpt-dir runs/toy --steps 60 --resume   # any number of ranks
//
// Parallel layout on P ranks; rank r holds:
//   model  layer1.weight [hidden, 16], layer1.bias [hidden]: tensor parallel, the row block
//            split_range(hidden, P, r), uneven when P does not divide hidden  -> TensorShard::block
//          layer2.weight [4, hidden], layer2.bias [4]: replicated; every rank computes the
//            loss on its share of the global batch (data parallel) and the gradients are
//            averaged with MPI_Allreduce                                       -> TensorShard::whole
//   optimizer  Adam's exp_avg and exp_avg_sq. Layer1's stay with their row block
//            -> TensorShard::block. Layer2's are sharded as ZeRO-1 does: rank r owns a flat
//            range of each flattened tensor, updates only that range of the parameter, and
//            MPI_Allgatherv re-assembles the parameter                     -> TensorShard::flat
//   ema    a moving average of the model, in the model's layout
//   running state  epoch, step (batch within the epoch), global_step (completed optimizer
//            steps), the cosine LR schedule and the shuffling sampler as JSON, and each rank's
//            noise RNG as its rank_blob.
// ckptio reshards on load: a checkpoint saved on P ranks loads on any number of ranks.
// Training is deterministic for a given number of ranks: fixed seeds, and every sample is
// computed from its index.
#include <mpi.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <ckptio/ckptio.hpp>

#include "toy/cosine_lr.hpp"
#include "toy/ema.hpp"
#include "toy/gathered_digest.hpp"
#include "toy/parallel_mlp.hpp"
#include "toy/partition.hpp"
#include "toy/rank_rng.hpp"
#include "toy/shuffling_sampler.hpp"
#include "toy/synthetic_data.hpp"
#include "toy/zero_adam.hpp"

namespace {

constexpr std::int64_t kGlobalBatch = 32;  // samples per optimizer step, over all ranks
constexpr double kBaseLr = 1e-2;
constexpr double kMinLr = 1e-3;
constexpr std::int64_t kWarmupSteps = 5;
constexpr float kEmaDecay = 0.99f;
constexpr float kNoiseScale = 0.01f;  // input-noise augmentation
constexpr std::uint64_t kSamplerSeed = 42;
constexpr std::uint64_t kNoiseSeed = 7;

// This program's exit status for a ckptio error: 2 for a usage error, 3 for I/O (a locked
// root included), 1 for damaged or mismatching input. (The ckptio tool uses the same codes.)
int exit_code_for(ckptio::ErrorKind kind) {
  switch (kind) {
    case ckptio::ErrorKind::Usage:
      return 2;
    case ckptio::ErrorKind::Io:
    case ckptio::ErrorKind::Locked:
      return 3;
    default:
      return 1;
  }
}

int rank_in(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int size_of(MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  return size;
}

// Everything that changes while training; all of it but last_loss goes into a checkpoint.
struct Trainer {
  Trainer(MPI_Comm comm, std::int64_t hidden, std::int64_t total_steps)
      : comm(comm),
        rank(rank_in(comm)),
        world_size(size_of(comm)),
        model(toy::initial_parameters(hidden, toy::split_range(hidden, world_size, rank))),
        ema(model),
        optimizer(model, comm),
        lr_schedule(kBaseLr, kMinLr, kWarmupSteps, total_steps),
        sampler(toy::kDatasetSize, kGlobalBatch, kSamplerSeed),
        noise_rng(toy::rank_rng_for(kNoiseSeed, rank)) {}

  // Runs optimizer step number `step_number` (counted from 1). Collective over comm.
  void train_one_step(std::int64_t step_number) {
    const std::vector<std::int64_t> batch = sampler.next_batch();
    const toy::Range mine = toy::split_range(kGlobalBatch, world_size, rank);
    std::vector<float> x(static_cast<std::size_t>(mine.size() * toy::kInputs));
    std::vector<float> y(static_cast<std::size_t>(mine.size() * toy::kOutputs));
    for (std::int64_t i = 0; i < mine.size(); ++i) {
      float* features = &x[static_cast<std::size_t>(i * toy::kInputs)];
      toy::make_sample(batch[static_cast<std::size_t>(mine.begin + i)], features,
                       &y[static_cast<std::size_t>(i * toy::kOutputs)]);
      for (std::int64_t k = 0; k < toy::kInputs; ++k) features[k] += kNoiseScale * toy::uniform_pm1(noise_rng());
    }
    toy::MlpShards grads;
    last_loss = toy::forward_backward(model, x, y, kGlobalBatch, grads, comm);
    optimizer.step(model, grads, lr_schedule.lr(), step_number);
    lr_schedule.step();
    toy::update_ema(ema, model, kEmaDecay);
  }

  MPI_Comm comm;
  int rank;
  int world_size;
  toy::MlpShards model;
  toy::MlpShards ema;
  toy::ZeroAdam optimizer;
  toy::CosineLr lr_schedule;
  toy::ShufflingSampler sampler;
  std::mt19937_64 noise_rng;
  double last_loss = 0.0;  // mean loss of the last step's global batch
};

// The checkpoint's view of the trainer after `global_step` completed steps. Every shard points
// into the trainer's own buffers, so the same Snapshot is what save() reads and what load()
// fills.
ckptio::Snapshot snapshot_of(Trainer& trainer, std::int64_t global_step) {
  using ckptio::DType;
  using ckptio::TensorShard;
  const std::int64_t hidden = trainer.model.hidden;
  const toy::Range rows = trainer.model.rows;
  const ckptio::Shape w1_shape{hidden, toy::kInputs};
  const ckptio::Shape b1_shape{hidden};
  const ckptio::Shape w2_shape{toy::kOutputs, hidden};
  const ckptio::Shape b2_shape{toy::kOutputs};
  // Layer1 lives in row blocks of the global tensors; the shards of w1 and b1 share them.
  const auto w1_block = [&](float* data) {
    return TensorShard::block(data, DType::F32, w1_shape, {rows.begin, 0}, {rows.size(), toy::kInputs});
  };
  const auto b1_block = [&](float* data) {
    return TensorShard::block(data, DType::F32, b1_shape, {rows.begin}, {rows.size()});
  };

  const auto weights = [&](toy::MlpShards& shards) {
    ckptio::StateDict dict;
    dict.add("layer1.weight", w1_block(shards.w1.data()));
    dict.add("layer1.bias", b1_block(shards.b1.data()));
    dict.add("layer2.weight", TensorShard::whole(shards.w2.data(), DType::F32, w2_shape));
    dict.add("layer2.bias", TensorShard::whole(shards.b2.data(), DType::F32, b2_shape));
    return dict;
  };

  toy::ZeroAdam& adam = trainer.optimizer;
  ckptio::StateDict optimizer;
  const auto add_moments = [&](const std::string& parameter, toy::Moments& moments, auto shard_of) {
    optimizer.add(parameter + ".exp_avg", shard_of(moments.exp_avg.data()));
    optimizer.add(parameter + ".exp_avg_sq", shard_of(moments.exp_avg_sq.data()));
  };
  add_moments("layer1.weight", adam.w1, w1_block);
  add_moments("layer1.bias", adam.b1, b1_block);
  add_moments("layer2.weight", adam.w2, [&](float* data) {
    return TensorShard::flat(data, DType::F32, w2_shape, adam.w2_range.begin, adam.w2_range.end);
  });
  add_moments("layer2.bias", adam.b2, [&](float* data) {
    return TensorShard::flat(data, DType::F32, b2_shape, adam.b2_range.begin, adam.b2_range.end);
  });

  ckptio::Snapshot snapshot;
  snapshot.model = weights(trainer.model);
  snapshot.ema = weights(trainer.ema);
  snapshot.optimizer = std::move(optimizer);
  snapshot.running.epoch = trainer.sampler.epoch();
  snapshot.running.step = trainer.sampler.batch_in_epoch();
  snapshot.running.global_step = global_step;
  snapshot.running.lr_scheduler = trainer.lr_schedule.state();
  snapshot.running.sampler = trainer.sampler.state();
  snapshot.rank_blob = toy::rng_to_bytes(trainer.noise_rng);
  return snapshot;
}

// Restores what load() does not put into the shards: the schedule, the sampler and each
// rank's RNG. Returns the checkpoint's global_step.
std::int64_t restore_running_state(Trainer& trainer, const ckptio::LoadResult& loaded) {
  trainer.lr_schedule.load_state(loaded.running.lr_scheduler);
  trainer.sampler.load_state(loaded.running.sampler);
  if (loaded.saved_world_size == trainer.world_size) {
    trainer.noise_rng = toy::rng_from_bytes(loaded.rank_blob);
  } else {
    // No saved stream belongs to this rank: derive new ones, the same way on every rerun.
    trainer.noise_rng = toy::rank_rng_derived(loaded.saved_rank_blobs, trainer.rank);
    if (trainer.rank == 0) {
      std::cout << "checkpoint was saved by " << loaded.saved_world_size << " ranks, this run has "
                << trainer.world_size << ": per-rank RNG states derived afresh from the "
                << loaded.saved_rank_blobs.size() << " saved ones" << std::endl;
    }
  }
  return loaded.running.global_step;
}

// A hash of the full model, EMA and optimizer state, gathered to rank 0 tensor by tensor in a
// fixed order: the same for any number of ranks and any split. Collective; valid on rank 0.
std::string state_digest(const Trainer& trainer) {
  toy::GatheredDigest digest(trainer.comm);
  for (const toy::MlpShards* weights : {&trainer.model, &trainer.ema}) {
    digest.add(weights->w1);
    digest.add(weights->b1);
    digest.add_replicated(weights->w2);
    digest.add_replicated(weights->b2);
  }
  const toy::ZeroAdam& adam = trainer.optimizer;
  for (const toy::Moments* moments : {&adam.w1, &adam.b1, &adam.w2, &adam.b2}) {
    digest.add(moments->exp_avg);
    digest.add(moments->exp_avg_sq);
  }
  return digest.hex();
}

struct Options {
  std::string ckpt_dir;
  std::int64_t steps = 100;
  std::int64_t ckpt_every = 10;
  bool resume = false;
  std::int64_t hidden = 64;
  int step_sleep_ms = 0;
  int keep_last = 0;
  // The node-local level (CheckpointOptions::local_dir, flush_every); empty: none.
  std::string local_dir;
  int flush_every = 1;
  // Preemption (ckptio::PreemptionGuard): which signal means save+requeue+exit, and the
  // walltime margin; --no-preemption-guard trains without it.
  std::string preempt_signal = "USR1";
  double walltime_margin = 30.0;
  int max_requeues = -1;
  bool no_guard = false;
  bool async_save = false;
};

// Parses the command line on every rank; only rank 0 prints. Returns an exit code when the
// program should stop here (--help: 0, bad flags: 2).
std::optional<int> parse_options(int argc, char** argv, int rank, Options& options) {
  CLI::App app{"Trains a toy model on MPI ranks and checkpoints it with ckptio."};
  app.add_option("--ckpt-dir", options.ckpt_dir, "Checkpoint root folder")->required();
  app.add_option("--steps", options.steps, "Total optimizer steps of the run")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ckpt-every", options.ckpt_every, "Save after every this many steps (and after the last)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--resume", options.resume, "Continue from the root's latest checkpoint, if there is one");
  app.add_option("--hidden", options.hidden, "Width of the hidden layer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--step-sleep-ms", options.step_sleep_ms, "Sleep this long per step (a stand-in for real work)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--keep-last", options.keep_last, "Checkpoints to keep; 0 keeps all")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--local-dir", options.local_dir,
                 "Node-local checkpoint folder (%j: the job ID); every save goes there, with a copy on the next node");
  app.add_option("--flush-every", options.flush_every, "With --local-dir: every this many saves also go to --ckpt-dir")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--preempt-signal", options.preempt_signal,
                 "Signal that saves, requeues (under Slurm) and exits 75; SIGTERM saves and exits 75")
      ->capture_default_str()
      ->check(CLI::IsMember({"USR1", "USR2"}));
  app.add_option("--walltime-margin", options.walltime_margin,
                 "Seconds kept in hand beyond twice the measured save time when the job's time limit nears")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-requeues", options.max_requeues, "Requeue at most this many times; -1: no limit")
      ->capture_default_str();
  app.add_flag("--no-preemption-guard", options.no_guard, "Install no signal handlers (signals end the run)");
  app.add_flag("--async-save", options.async_save,
               "Write periodic checkpoints in the background (save_async); the last one and a stop's are "
               "synchronous");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = rank == 0 ? app.exit(error) : error.get_exit_code();
    return code == 0 ? 0 : 2;
  }
  return std::nullopt;
}

// A run started without --resume must not mix its checkpoints with an earlier run's. Rank 0
// looks into the root and prints why it refuses; every rank gets the exit code (0: go on).
int refuse_non_empty_root(MPI_Comm comm, const std::filesystem::path& root) {
  int exit_code = 0;
  if (rank_in(comm) == 0) {
    try {
      const std::vector<ckptio::CheckpointEntry> existing =
          std::filesystem::exists(root) ? ckptio::list_checkpoints(root) : std::vector<ckptio::CheckpointEntry>{};
      if (!existing.empty()) {
        std::cerr << "train_toy: refusing to start: " << root.string() << " already holds " << existing.size()
                  << " checkpoint(s), the newest is " << existing.back().name
                  << ". Pass --resume to continue from it, or choose an empty --ckpt-dir." << std::endl;
        exit_code = 2;
      }
    } catch (const ckptio::Error& error) {
      std::cerr << "train_toy: error: " << error.what() << std::endl;
      exit_code = exit_code_for(error.kind());
    }
  }
  MPI_Bcast(&exit_code, 1, MPI_INT, 0, comm);
  return exit_code;
}

int run(int argc, char** argv) {
  MPI_Comm comm = MPI_COMM_WORLD;
  const int rank = rank_in(comm);
  const auto say = [rank](const std::string& line) {
    if (rank == 0) std::cout << line << std::endl;
  };

  Options options;
  if (const std::optional<int> exit_code = parse_options(argc, argv, rank, options)) return *exit_code;
  if (!options.resume) {
    if (const int exit_code = refuse_non_empty_root(comm, options.ckpt_dir); exit_code != 0) return exit_code;
  }

  ckptio::CheckpointOptions checkpoint_options;
  checkpoint_options.keep_last = options.keep_last;
  checkpoint_options.local_dir = options.local_dir;
  checkpoint_options.flush_every = options.flush_every;
  ckptio::CheckpointIO io(comm, options.ckpt_dir, checkpoint_options);
  Trainer trainer(comm, options.hidden, options.steps);
  std::int64_t g = 0;  // completed optimizer steps
  if (options.resume) {
    if (const std::optional<ckptio::LoadResult> loaded = io.load_latest(snapshot_of(trainer, g))) {
      g = restore_running_state(trainer, *loaded);
      say("resumed from " + loaded->path + " at global_step " + std::to_string(g));
      say("resumed from " + loaded->level + " checkpoint global_step " + std::to_string(g));
    } else {
      say("no checkpoint in " + options.ckpt_dir + ": starting fresh");
    }
  }
  // Signals become a stop agreed by every rank at a step boundary; the checkpoint of that step
  // is saved below before the guard requeues the job (under Slurm) and exits with 75.
  std::optional<ckptio::PreemptionGuard> guard;
  if (!options.no_guard) {
    ckptio::PreemptionOptions preemption;
    preemption.requeue_signal = options.preempt_signal == "USR2" ? SIGUSR2 : SIGUSR1;
    preemption.margin_seconds = options.walltime_margin;
    preemption.max_requeues = options.max_requeues;
    guard.emplace(comm, io, preemption);
  }
  say("training on " + std::to_string(trainer.world_size) + " rank(s), hidden " + std::to_string(options.hidden) +
      ", global_step " + std::to_string(g) + " of " + std::to_string(options.steps));

  // Collective. Background saves copy the state into a staging buffer first: make it now, so
  // that the first save_async does not allocate and fault in fresh memory inside the loop.
  if (options.async_save) io.reserve_staging(snapshot_of(trainer, g));

  for (; g < options.steps;) {
    trainer.train_one_step(g + 1);
    if (options.step_sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options.step_sleep_ms));
    ++g;  // step g is now complete
    // Collective, one step late, the same on every rank; a run that reached its last step
    // simply finishes.
    const bool stop = guard && guard->should_stop(g) && g < options.steps;
    if (g % options.ckpt_every == 0 || g == options.steps || stop) {
      // A stop or the end saves synchronously: it waits for a background save still in flight
      // first, and the checkpoint is committed when save returns.
      const bool in_background = options.async_save && !stop && g < options.steps;
      const std::filesystem::path saved =
          in_background ? io.save_async(snapshot_of(trainer, g)) : io.save(snapshot_of(trainer, g));
      char loss[32];
      std::snprintf(loss, sizeof loss, "%.6f", trainer.last_loss);
      say(std::string(in_background ? "saving " : "saved ") + saved.string() + " at global_step " + std::to_string(g) +
          " (loss " + loss + ")" + (in_background ? " in the background" : ""));
    }
    if (stop) {
      say("stopping at global_step " + std::to_string(g) + " (" + ckptio::to_string(guard->reason()) +
          "): checkpoint committed, " + (guard->requeue_due() ? "requeueing, " : "") + "exit status " +
          std::to_string(ckptio::kPreemptedExitCode));
      guard->exit_after_save();  // finalizes MPI and never returns
    }
  }

  const std::string digest = state_digest(trainer);
  say("final digest: " + digest);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // --async-save writes from a background thread, which needs MPI_THREAD_MULTIPLE.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int exit_code = 1;
  try {
    exit_code = run(argc, argv);
  } catch (const ckptio::Error& error) {
    // ckptio raises the same error on every rank, so every rank gets here and can finalize.
    if (rank_in(MPI_COMM_WORLD) == 0) std::cerr << "train_toy: error: " << error.what() << std::endl;
    exit_code = exit_code_for(error.kind());
  } catch (const std::exception& error) {
    // Other errors may hit one rank only, while the rest wait in a collective: stop them all.
    std::cerr << "train_toy: rank " << rank_in(MPI_COMM_WORLD) << ": error: " << error.what() << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return exit_code;
}
