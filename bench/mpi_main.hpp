// The main() every MPI benchmark shares: MPI with threads (the library may run its I/O on a
// thread of its own), the benchmark's run(), and an error that ends every rank.
#pragma once

namespace ckptio::bench {

// Runs `run` between MPI_Init_thread and MPI_Finalize and returns its exit code. An
// exception is printed as "[name] [rank R] error: ..." and aborts the job: the failure may
// be this rank's alone, and the other ranks must not be left waiting in a collective.
int run_mpi_benchmark(const char* name, int argc, char** argv, int (*run)(int, char**));

}  // namespace ckptio::bench
