# The build enforces the layers (src/CMakeLists.txt): a source of one layer cannot include a
# header of a later layer. Configures ckptio in a scratch folder, takes the compile command of
# one source of each layer from compile_commands.json, and compiles small probe files with it:
# an include of the layer's own header and of core's must compile, and an include of a
# header of every later layer must fail with "No such file or directory".
# Arguments: -DSOURCE_DIR=<ckptio> -DWORK_DIR=<scratch build folder>
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
          -DCKPTIO_BUILD_TESTS=OFF -DCKPTIO_BUILD_EXAMPLES=OFF -DCKPTIO_BUILD_BENCH=OFF -DCKPTIO_BUILD_TOOLS=OFF
          -DCKPTIO_BUILD_PYTHON=OFF
  RESULT_VARIABLE configure_result OUTPUT_VARIABLE configure_output ERROR_VARIABLE configure_output)
if(NOT configure_result EQUAL 0)
  message(FATAL_ERROR "configure failed:\n${configure_output}")
endif()
file(READ "${WORK_DIR}/build/compile_commands.json" commands)

# One header of each layer, in layer order.
set(layers core mpi cuda h5 formats io preempt)
set(header_core core/log.hpp)
set(header_mpi mpi/comm.hpp)
set(header_cuda cuda/device.hpp)
set(header_h5 h5/h5_util.hpp)
set(header_formats formats/byte_source.hpp)
set(header_io io/fs_util.hpp)
set(header_preempt preempt/signal_flags.hpp)

# Compiles a probe that includes `header` with the command of `source`; sets `result` to
# the compiler's exit status and `output` to what it printed.
function(compile_probe command directory source header result output)
  string(MAKE_C_IDENTIFIER "${header}" name)
  set(probe "${WORK_DIR}/probes/${name}.cpp")
  file(WRITE "${probe}" "#include \"${header}\"\n")
  string(REPLACE "${source}" "${probe}" command "${command}")
  separate_arguments(argv UNIX_COMMAND "${command} -fsyntax-only")
  execute_process(COMMAND ${argv} WORKING_DIRECTORY "${directory}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${result} ${rc} PARENT_SCOPE)
  set(${output} "${out}" PARENT_SCOPE)
endfunction()

string(JSON count LENGTH "${commands}")
math(EXPR last "${count} - 1")
set(checked 0)
set(above "${layers}")
foreach(layer IN LISTS layers)
  list(REMOVE_AT above 0)
  # The first source of this layer in the compile database.
  set(command "")
  foreach(i RANGE ${last})
    string(JSON source GET "${commands}" ${i} file)
    if(source MATCHES "/src/${layer}/[^/]+\\.cpp$")
      string(JSON command GET "${commands}" ${i} command)
      string(JSON directory GET "${commands}" ${i} directory)
      break()
    endif()
  endforeach()
  if(command STREQUAL "")
    message(FATAL_ERROR "no source of layer ${layer} in ${WORK_DIR}/build/compile_commands.json")
  endif()
  foreach(visible ${header_${layer}} ${header_core})
    compile_probe("${command}" "${directory}" "${source}" "${visible}" rc out)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "layer ${layer}: #include \"${visible}\" should compile but failed:\n${out}")
    endif()
    math(EXPR checked "${checked} + 1")
  endforeach()
  foreach(upper IN LISTS above)
    set(hidden ${header_${upper}})
    compile_probe("${command}" "${directory}" "${source}" "${hidden}" rc out)
    if(rc EQUAL 0)
      message(FATAL_ERROR "layer ${layer}: #include \"${hidden}\" (layer ${upper}, a later one) compiled")
    endif()
    if(NOT out MATCHES "${hidden}: No such file or directory")
      message(FATAL_ERROR "layer ${layer}: #include \"${hidden}\" failed, but not for want of the header:\n${out}")
    endif()
    math(EXPR checked "${checked} + 1")
  endforeach()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
message(STATUS "layers enforced: ${checked} probe includes behaved")
