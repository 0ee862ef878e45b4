// Helper for the crash-safety script: `crash_helper save ROOT STEP` saves a checkpoint
// whose contents are seeded by STEP; `crash_helper verify ROOT STEP` loads `latest` and
// exits 0 only if it is global_step STEP with exactly those contents. An optional fourth
// argument MIB adds a tensor of MIB MiB (split over the ranks), for the disk-full test.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/test_state.hpp"

using namespace ckptio;
using namespace ckptio::test;

namespace {

std::vector<TensorSpec> specs() {
  return {{"model", "w", DType::F32, {256, 64}, Layout::Dim0Blocks},
          {"model", "b", DType::F32, {64}, Layout::Replicated},
          {"optimizer", "exp_avg", DType::F32, {256 * 64}, Layout::Flat}};
}

// Contents depend on the step so that loading the wrong checkpoint is detected.
std::vector<TensorSpec> specs_for(int step, int extra_mib) {
  auto s = specs();
  if (extra_mib > 0) s.push_back({"model", "big", DType::F32, {extra_mib * 256, 1024}, Layout::Dim0Blocks});
  for (auto& t : s) t.name += ".s" + std::to_string(step % 7);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: crash_helper save|verify ROOT STEP [MIB]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const std::string mode = argv[1], root = argv[2];
  const int step = std::atoi(argv[3]);
  const int extra_mib = argc == 5 ? std::atoi(argv[4]) : 0;
  const int rank = world_rank(), ranks = world_size();
  int status = 0;
  try {
    CheckpointIO io(MPI_COMM_WORLD, root, {.keep_last = 2});
    TestState state(specs_for(step, extra_mib), rank, ranks);
    if (mode == "save") {
      state.fill();
      state.snapshot().running.global_step = step;
      io.save(state.snapshot());
    } else {
      state.poison();
      const auto r = io.load_latest(state.snapshot());
      if (!r) {
        std::fprintf(stderr, "[rank %d] no checkpoint\n", rank);
        status = 1;
      } else if (r->running.global_step != step) {
        std::fprintf(stderr, "[rank %d] latest is global_step %lld, expected %d\n", rank,
                     static_cast<long long>(r->running.global_step), step);
        status = 1;
      } else if (auto problem = state.check(); !problem.empty()) {
        std::fprintf(stderr, "[rank %d] wrong contents: %s\n", rank, problem.c_str());
        status = 1;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] error: %s\n", rank, e.what());
    status = 1;
  }
  int global = 0;
  MPI_Allreduce(&status, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return global;
}
