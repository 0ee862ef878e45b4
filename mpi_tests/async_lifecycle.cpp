// save_async at the edges of MPI's lifetime, each in its own process because it depends on
// how MPI was initialised and finalised:
//   thread-level  MPI initialised with MPI_THREAD_SERIALIZED: save_async throws the same
//                 UsageError on every rank, naming MPI_Init_thread.
//   finalize      save_async, then MPI_Finalize with no wait: the save completes inside
//                 MPI_Finalize and is committed; the CheckpointIO is destroyed after
//                 MPI_Finalize without touching MPI.
// Prints "OK" on rank 0 and exits 0 when the behaviour is right.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "ckptio/ckptio.hpp"

namespace fs = std::filesystem;

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "FAIL: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return fail("usage: async_lifecycle thread-level|finalize ROOT");
  const std::string mode = argv[1];
  const fs::path root = argv[2];
  int provided = 0;
  MPI_Init_thread(&argc, &argv, mode == "thread-level" ? MPI_THREAD_SERIALIZED : MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);

  std::vector<float> weights(1 << 16);
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<float>(i);
  ckptio::Snapshot snapshot;
  snapshot.model.emplace();
  snapshot.model->add(
      "w", ckptio::TensorShard::whole(weights.data(), ckptio::DType::F32, {static_cast<std::int64_t>(weights.size())}));
  snapshot.running.global_step = 5;

  if (mode == "thread-level") {
    std::string message;
    {
      ckptio::CheckpointIO io(MPI_COMM_WORLD, root);
      try {
        io.save_async(snapshot);
      } catch (const ckptio::UsageError& e) {
        message = e.what();
      }
    }
    const std::string expected =
        "[ckptio] [rank 0] save_async: save_async needs MPI_THREAD_MULTIPLE: initialise MPI with "
        "MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) and check `provided`";
    int ok = message == expected, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Finalize();
    if (!ok) return fail("rank " + std::to_string(rank) + " got '" + message + "'");
    if (!all_ok) return 1;
    if (rank == 0) std::puts("OK");
    return 0;
  }

  std::optional<ckptio::CheckpointIO> io;  // outlives MPI on purpose
  io.emplace(MPI_COMM_WORLD, root);
  io->save_async(snapshot);
  std::fill(weights.begin(), weights.end(), -1.0f);
  MPI_Finalize();  // the save is finished in here
  if (io->save_in_flight() == false) return fail("the save's outcome was collected by nobody yet; pending expected");
  io.reset();  // after MPI_Finalize: must not call MPI
  if (rank != 0) return 0;
  std::ifstream latest(root / "latest");
  std::string line;
  std::getline(latest, line);
  if (line != "epoch0-global_step5.h5") return fail("latest holds '" + line + "'");
  if (!fs::exists(root / line) || fs::exists(root / (line + ".partial"))) return fail("the container is not committed");
  std::puts("OK");
  return 0;
}
