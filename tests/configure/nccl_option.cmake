# CKPTIO_WITH_NCCL: OFF turns NCCL off where it is installed; ON stops with a clear message
# when NCCL is missing (here: pointed at a folder without it) or when CUDA is off.
# Configures only. Arguments: -DSOURCE_DIR=<ckptio> -DWORK_DIR=<scratch build folder>
function(configure_ckptio result_var output_var)
  file(REMOVE_RECURSE "${WORK_DIR}")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}" -DCKPTIO_BUILD_TESTS=OFF -DCKPTIO_BUILD_EXAMPLES=OFF
            -DCKPTIO_BUILD_BENCH=OFF -DCKPTIO_BUILD_TOOLS=OFF ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(REGEX REPLACE "[ \n]+" " " out "${out}")
  set(${result_var} ${rc} PARENT_SCOPE)
  set(${output_var} "${out}" PARENT_SCOPE)
endfunction()

configure_ckptio(rc out -DCKPTIO_WITH_NCCL=OFF)
if(NOT rc EQUAL 0 OR NOT out MATCHES "NCCL=0")
  message(FATAL_ERROR "CKPTIO_WITH_NCCL=OFF did not configure without NCCL:\n${out}")
endif()
set(have_cuda OFF)
if(out MATCHES "CUDA=1")
  set(have_cuda ON)
endif()

configure_ckptio(rc out -DCKPTIO_WITH_CUDA=OFF -DCKPTIO_WITH_NCCL=ON)
if(rc EQUAL 0 OR NOT out MATCHES "CKPTIO_WITH_NCCL=ON needs CUDA")
  message(FATAL_ERROR "CKPTIO_WITH_NCCL=ON with CUDA off did not stop with the expected message:\n${out}")
endif()

if(have_cuda)
  file(MAKE_DIRECTORY "${WORK_DIR}-empty")
  configure_ckptio(rc out -DCKPTIO_WITH_NCCL=ON -DNCCL_INCLUDE_DIR=${WORK_DIR}-empty
                   -DNCCL_LIBRARY=${WORK_DIR}-empty/libnccl.so)
  file(REMOVE_RECURSE "${WORK_DIR}-empty")
  if(rc EQUAL 0 OR NOT out MATCHES "CKPTIO_WITH_NCCL=ON but nccl.h / libnccl were not found")
    message(FATAL_ERROR "CKPTIO_WITH_NCCL=ON without NCCL did not stop with the expected message:\n${out}")
  endif()
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
message(STATUS "CKPTIO_WITH_NCCL: OFF turns NCCL off; ON refuses a build without CUDA or NCCL")
