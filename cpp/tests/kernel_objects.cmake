# ctest (cmake -P): the resampler's per-ISA kernel objects define no weak or unique symbols.
#
# Code in those objects is compiled with AVX2 or AVX-512 enabled. A weak symbol there (an
# inline function or template instantiation with external linkage) could also be emitted by
# a baseline object, and the linker keeps one copy for both: if it kept the vector one, a CPU
# without that ISA would fault in baseline code. kernels_simd.hpp keeps everything internal;
# this checks it. Arguments: -DNM=<nm> -DOBJECTS=<the library's objects>.
set(checked 0)
foreach(object IN LISTS OBJECTS)
  if(NOT object MATCHES "kernels_(sse2|avx2|avx512)\\.cpp\\.o(bj)?$")
    continue()
  endif()
  execute_process(COMMAND "${NM}" --defined-only "${object}"
                  OUTPUT_VARIABLE symbols RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${object}")
  endif()
  string(REPLACE "\n" ";" lines "${symbols}")
  foreach(line IN LISTS lines)
    # "<address> <type> <name>": W/w weak, V/v weak object, u unique global.
    if(line MATCHES "^[0-9a-fA-F]* [WwVvu] (.*)$")
      message(FATAL_ERROR "${object} defines the weak symbol ${CMAKE_MATCH_1}")
    endif()
  endforeach()
  math(EXPR checked "${checked} + 1")
endforeach()
if(checked LESS 3)
  message(FATAL_ERROR "expected the SSE2, AVX2 and AVX-512 kernel objects, found ${checked}")
endif()
message(STATUS "${checked} kernel objects define no weak symbols")
