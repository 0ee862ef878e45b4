#include "mpi_main.hpp"

#include <mpi.h>

#include <exception>
#include <iostream>

namespace ckptio::bench {

int run_mpi_benchmark(const char* name, int argc, char** argv, int (*run)(int, char**)) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const std::exception& e) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::cerr << "[" << name << "] [rank " << rank << "] error: " << e.what() << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}

}  // namespace ckptio::bench
