# cmake -DSOURCE_DIR=... -DWORK_DIR=... -DSERIAL_H5CC=... -P refuses_serial_hdf5.cmake
if(NOT SERIAL_H5CC OR NOT EXISTS "${SERIAL_H5CC}")
  message(FATAL_ERROR "no serial HDF5 compiler wrapper h5cc: install libhdf5-dev (scripts/test does)")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}"
          -DHDF5_C_COMPILER_EXECUTABLE=${SERIAL_H5CC}
          -DCKPTIO_BUILD_TESTS=OFF -DCKPTIO_BUILD_EXAMPLES=OFF -DCKPTIO_BUILD_BENCH=OFF
          -DCKPTIO_BUILD_TOOLS=OFF -DCKPTIO_WITH_CUDA=OFF
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(REMOVE_RECURSE "${WORK_DIR}")
if(rc EQUAL 0)
  message(FATAL_ERROR "configuring against the serial HDF5 of ${SERIAL_H5CC} succeeded; it must fail")
endif()
string(REGEX REPLACE "[ \n]+" " " text "${out} ${err}")
if(NOT text MATCHES "ckptio needs a parallel \\(MPI-IO\\) build of HDF5")
  message(FATAL_ERROR "configure failed, but without the expected message:\n${out}\n${err}")
endif()
message(STATUS "configure refused the serial HDF5 with the expected message")
