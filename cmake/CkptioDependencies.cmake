# Finds the dependencies of ckptio and decides CUDA/NCCL support.

find_package(MPI REQUIRED COMPONENTS C)

# Debian installs the parallel HDF5 under an openmpi-specific prefix; prefer it.
set(HDF5_PREFER_PARALLEL ON)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "ckptio needs a parallel (MPI-IO) build of HDF5, but the HDF5 found "
    "(${HDF5_C_INCLUDE_DIRS}) is a serial build (H5_HAVE_PARALLEL is not set). "
    "On Debian/Ubuntu: apt-get install libhdf5-openmpi-dev")
endif()
# Check the header itself, not only what FindHDF5 concluded.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${HDF5_C_INCLUDE_DIRS} ${MPI_C_INCLUDE_DIRS})
check_symbol_exists(H5_HAVE_PARALLEL "H5pubconf.h" CKPTIO_H5_HAVE_PARALLEL)
unset(CMAKE_REQUIRED_INCLUDES)
if(NOT CKPTIO_H5_HAVE_PARALLEL)
  message(FATAL_ERROR
    "ckptio needs a parallel HDF5: H5_HAVE_PARALLEL is not defined in the H5pubconf.h "
    "found in ${HDF5_C_INCLUDE_DIRS}. On Debian/Ubuntu: apt-get install libhdf5-openmpi-dev")
endif()

find_package(nlohmann_json 3.9 REQUIRED)

find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY NAMES xxhash REQUIRED)
# libxxhash built with its x86 dispatcher (Debian's is) exports XXH3_64bits_dispatch, which
# picks the widest vector unit of the CPU at run time (AVX2, AVX-512); the inline XXH3 that
# ckptio compiles is limited to the build's baseline (SSE2 on x86-64), about 3x slower.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${XXHASH_INCLUDE_DIR})
set(CMAKE_REQUIRED_LIBRARIES ${XXHASH_LIBRARY})
check_symbol_exists(XXH3_64bits_dispatch "xxh_x86dispatch.h" CKPTIO_HAVE_XXH3_DISPATCH)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)

# CUDA / NCCL: ON requires them, OFF disables them, AUTO uses them when present.
set(CKPTIO_HAVE_CUDA 0)
set(CKPTIO_HAVE_NCCL 0)
if(NOT CKPTIO_WITH_CUDA STREQUAL "OFF")
  if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  if(CKPTIO_WITH_CUDA STREQUAL "ON")
    find_package(CUDAToolkit REQUIRED)
  else()
    find_package(CUDAToolkit QUIET)
  endif()
  if(CUDAToolkit_FOUND)
    set(CKPTIO_HAVE_CUDA 1)
  endif()
endif()
if(CKPTIO_HAVE_CUDA AND NOT CKPTIO_WITH_NCCL STREQUAL "OFF")
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h" AND EXISTS "${NCCL_LIBRARY}")
    set(CKPTIO_HAVE_NCCL 1)
  elseif(CKPTIO_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "CKPTIO_WITH_NCCL=ON but nccl.h / libnccl were not found (NCCL_INCLUDE_DIR="
                        "${NCCL_INCLUDE_DIR}, NCCL_LIBRARY=${NCCL_LIBRARY}); install NCCL or point those two "
                        "variables at it, or configure with -DCKPTIO_WITH_NCCL=OFF")
  endif()
elseif(CKPTIO_WITH_NCCL STREQUAL "ON")
  message(FATAL_ERROR "CKPTIO_WITH_NCCL=ON needs CUDA (CKPTIO_WITH_CUDA is OFF or CUDA was not found)")
endif()
message(STATUS "ckptio: HDF5 ${HDF5_VERSION} (parallel), CUDA=${CKPTIO_HAVE_CUDA}, NCCL=${CKPTIO_HAVE_NCCL}")
