# Installs the built ckptio into a fresh prefix, then configures, builds and runs the outside
# project in project/ against that prefix only. Run with cmake -P; every step that fails
# stops the test with the step's name.
#
# Variables (all required unless noted):
#   CKPTIO_BINARY_DIR      ckptio's build tree, already built
#   CONSUMER_SOURCE_DIR    the outside project's sources
#   CONSUMER_WORK_DIR      scratch folder for this test, emptied first
#   CONSUMER_CXX_COMPILER  the compiler ckptio was built with
#   CONSUMER_BUILD_TYPE    build type / configuration (may be empty)
#   MPIEXEC_EXECUTABLE, MPIEXEC_NUMPROC_FLAG, CONSUMER_RANKS; MPIEXEC_PREFLAGS (optional)
cmake_minimum_required(VERSION 3.22)

foreach(required CKPTIO_BINARY_DIR CONSUMER_SOURCE_DIR CONSUMER_WORK_DIR CONSUMER_CXX_COMPILER
                 MPIEXEC_EXECUTABLE MPIEXEC_NUMPROC_FLAG CONSUMER_RANKS)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${required} is not set")
  endif()
endforeach()

set(prefix "${CKPTIO_BINARY_DIR}/consumer-prefix")
set(consumer_build "${CONSUMER_WORK_DIR}/build")
set(checkpoint_root "${CONSUMER_WORK_DIR}/checkpoints")
set(config_args)
if(CONSUMER_BUILD_TYPE)
  set(config_args --config "${CONSUMER_BUILD_TYPE}")
endif()

# A prefix left from an earlier run could hide a file that install no longer provides.
file(REMOVE_RECURSE "${prefix}" "${CONSUMER_WORK_DIR}")
file(MAKE_DIRECTORY "${CONSUMER_WORK_DIR}")

function(run_step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status COMMAND_ECHO STDOUT)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "consumer test: ${name} failed (${status})")
  endif()
endfunction()

run_step("install into ${prefix}"
  "${CMAKE_COMMAND}" --install "${CKPTIO_BINARY_DIR}" --prefix "${prefix}" ${config_args})

foreach(installed include/ckptio/ckptio.hpp include/ckptio/version.hpp)
  if(NOT EXISTS "${prefix}/${installed}")
    message(FATAL_ERROR "consumer test: install did not provide ${installed}")
  endif()
endforeach()

run_step("configure the outside project"
  "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}")

# The package must come from the fresh prefix, not from some other installation.
file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^ckptio_DIR:")
string(REGEX REPLACE "^ckptio_DIR:[A-Z]+=" "" found_dir "${found_dir}")
file(REAL_PATH "${found_dir}" found_dir)
file(REAL_PATH "${prefix}" real_prefix)
string(FIND "${found_dir}" "${real_prefix}/" where)
if(NOT where EQUAL 0)
  message(FATAL_ERROR "consumer test: find_package(ckptio) used ${found_dir}, not the package in ${prefix}")
endif()

run_step("build the outside project" "${CMAKE_COMMAND}" --build "${consumer_build}" ${config_args})

find_program(consumer_program ckptio_consumer
  PATHS "${consumer_build}" "${consumer_build}/${CONSUMER_BUILD_TYPE}" NO_DEFAULT_PATH REQUIRED)
separate_arguments(preflags UNIX_COMMAND "${MPIEXEC_PREFLAGS}")
run_step("run the outside program"
  "${MPIEXEC_EXECUTABLE}" ${MPIEXEC_NUMPROC_FLAG} ${CONSUMER_RANKS} ${preflags}
  "${consumer_program}" "${checkpoint_root}")

file(STRINGS "${checkpoint_root}/latest" latest_name)
if(NOT latest_name STREQUAL "epoch2-global_step11.h5")
  message(FATAL_ERROR "consumer test: ${checkpoint_root}/latest names '${latest_name}', expected epoch2-global_step11.h5")
endif()
message(STATUS "consumer test: installed package found, built, ran and checked")
