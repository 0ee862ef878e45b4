# Configures and builds the library with CKPTIO_WITH_CUDA=OFF (no tests, examples, tools,
# benchmarks or Python package), so that the build without CUDA keeps compiling where CUDA is
# installed.
# What is checked is that it compiles and links, not the code it makes: the build is
# unoptimised and without debug information (a Debug build whose flags are just -O0), which
# takes a fraction of the time of the default RelWithDebInfo, and it uses the outer build's
# compiler launcher (ccache) when there is one.
# Arguments: -DSOURCE_DIR=<ckptio> -DWORK_DIR=<scratch build folder>
#            [-DCOMPILER_LAUNCHER=<the outer build's CMAKE_CXX_COMPILER_LAUNCHER>]
file(REMOVE_RECURSE "${WORK_DIR}")
set(launcher_args)
if(COMPILER_LAUNCHER)
  set(launcher_args "-DCMAKE_C_COMPILER_LAUNCHER=${COMPILER_LAUNCHER}" "-DCMAKE_CXX_COMPILER_LAUNCHER=${COMPILER_LAUNCHER}")
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}" -DCKPTIO_WITH_CUDA=OFF -DCKPTIO_BUILD_TESTS=OFF
          -DCKPTIO_BUILD_EXAMPLES=OFF -DCKPTIO_BUILD_BENCH=OFF -DCKPTIO_BUILD_TOOLS=OFF -DCKPTIO_BUILD_PYTHON=OFF
          -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS_DEBUG=-O0 ${launcher_args}
  RESULT_VARIABLE configure_result OUTPUT_VARIABLE configure_output ERROR_VARIABLE configure_output)
if(NOT configure_result EQUAL 0)
  message(FATAL_ERROR "configure with CKPTIO_WITH_CUDA=OFF failed:\n${configure_output}")
endif()
if(NOT configure_output MATCHES "CUDA=0, NCCL=0")
  message(FATAL_ERROR "CKPTIO_WITH_CUDA=OFF did not turn CUDA off:\n${configure_output}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}" -j 2 --target ckptio
                RESULT_VARIABLE build_result OUTPUT_VARIABLE build_output ERROR_VARIABLE build_output)
if(NOT build_result EQUAL 0)
  message(FATAL_ERROR "building ckptio with CKPTIO_WITH_CUDA=OFF failed:\n${build_output}")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
message(STATUS "ckptio builds with CKPTIO_WITH_CUDA=OFF")
