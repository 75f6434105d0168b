# -DAMQ_PREBUILT_KERNELS=<build dir>: take the AOT kernels (objects and headers)
# and the amq_generators executable from another, already built, amq build
# instead of running the Halide generators again. The sanitizer builds use it
# (scripts/test.sh, docs/RELIABILITY.md): the kernels are Halide's code, not
# instrumented by -fsanitize anyway, and generating them is most of a build.
# The tuner (autotune/, libHalide's JIT) is compiled in every build: in a
# sanitizer build it is amq's own code like the rest.
#
# amq_add_halide_library(<name> FROM <gen> GENERATOR <g> FUNCTION_NAME <f>
#                        TARGETS <t>... [PARAMS <p>...] [USE_RUNTIME <rt>])
#   add_halide_library with the same arguments; with AMQ_PREBUILT_KERNELS, a
#   STATIC library of the same name (and <name>.runtime without USE_RUNTIME) made
#   of the files add_halide_library would have written, copied from the same
#   folder of the prebuilt build, so that every other target sees no difference.
# amq_import_generators([name])
#   amq_generators (or name) as an IMPORTED executable: the prebuilt build's.

set(AMQ_PREBUILT_KERNELS "" CACHE PATH
    "Take the AOT kernels and amq_generators from this amq build folder instead of generating them")

# What the kernels of this build are generated with, for the builds that take
# them (compared below).
file(SHA256 "${AMQ_SCHEDULES}" amq_schedules_sha256)
set(AMQ_BUILT_SCHEDULES "${AMQ_SCHEDULES} ${amq_schedules_sha256}" CACHE INTERNAL
    "Schedules file the kernels of this build are generated with, and its SHA-256")

if(AMQ_PREBUILT_KERNELS)
  get_filename_component(AMQ_PREBUILT_KERNELS "${AMQ_PREBUILT_KERNELS}" ABSOLUTE)
  if(AMQ_PREBUILT_KERNELS STREQUAL PROJECT_BINARY_DIR)
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS} is this build folder; "
                        "name another amq build")
  endif()
  if(NOT EXISTS "${AMQ_PREBUILT_KERNELS}/CMakeCache.txt")
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS}: no CMakeCache.txt there; "
                        "expected an amq build folder (cmake -S <amq> -B <dir> && cmake --build <dir>)")
  endif()
  load_cache("${AMQ_PREBUILT_KERNELS}" READ_WITH_PREFIX amq_prebuilt_
             CMAKE_PROJECT_NAME AMQ_BUILT_SCHEDULES AMQ_KERNEL_TARGETS AMQ_PREBUILT_KERNELS)
  if(NOT amq_prebuilt_CMAKE_PROJECT_NAME STREQUAL "amq")
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS} is a build of "
                        "'${amq_prebuilt_CMAKE_PROJECT_NAME}', expected amq")
  endif()
  if(amq_prebuilt_AMQ_PREBUILT_KERNELS)
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS} takes its kernels from "
                        "${amq_prebuilt_AMQ_PREBUILT_KERNELS} itself; name that build instead")
  endif()
  # The kernels' knobs must be this build's: the runtime packs weights for them.
  if(NOT "${amq_prebuilt_AMQ_KERNEL_TARGETS}" STREQUAL "${AMQ_KERNEL_TARGETS}")
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS} was configured with "
                        "AMQ_KERNEL_TARGETS=${amq_prebuilt_AMQ_KERNEL_TARGETS} but this build has "
                        "AMQ_KERNEL_TARGETS=${AMQ_KERNEL_TARGETS}; configure both with the same value")
  endif()
  if(NOT "${amq_prebuilt_AMQ_BUILT_SCHEDULES}" STREQUAL "${AMQ_BUILT_SCHEDULES}")
    message(FATAL_ERROR "AMQ_PREBUILT_KERNELS=${AMQ_PREBUILT_KERNELS}: its kernels were configured "
                        "with the schedules '${amq_prebuilt_AMQ_BUILT_SCHEDULES}' (file SHA-256), "
                        "this build uses '${AMQ_BUILT_SCHEDULES}'; build that folder again first "
                        "(cmake --build ${AMQ_PREBUILT_KERNELS}) or give both the same AMQ_SCHEDULES")
  endif()
  message(STATUS "AOT kernels and amq_generators: from ${AMQ_PREBUILT_KERNELS}")
endif()

# The files of the prebuilt build's folder matching this one, copied here when
# they change; <out_var> gets the copies.
function(_amq_copy_prebuilt out_var)
  file(RELATIVE_PATH rel "${PROJECT_BINARY_DIR}" "${CMAKE_CURRENT_BINARY_DIR}")
  set(from "")
  set(to "")
  foreach(f IN LISTS ARGN)
    list(APPEND from "${AMQ_PREBUILT_KERNELS}/${rel}/${f}")
    list(APPEND to "${CMAKE_CURRENT_BINARY_DIR}/${f}")
  endforeach()
  add_custom_command(OUTPUT ${to}
                     COMMAND ${CMAKE_COMMAND} -E copy ${from} "${CMAKE_CURRENT_BINARY_DIR}"
                     DEPENDS ${from}
                     COMMENT "Copying the prebuilt ${ARGV1} etc. from ${AMQ_PREBUILT_KERNELS}/${rel}"
                     VERBATIM)
  set(${out_var} ${to} PARENT_SCOPE)
endfunction()

function(amq_add_halide_library name)
  if(NOT AMQ_PREBUILT_KERNELS)
    add_halide_library(${name} ${ARGN})
    return()
  endif()
  cmake_parse_arguments(PARSE_ARGV 1 A "" "FROM;GENERATOR;FUNCTION_NAME;USE_RUNTIME"
                        "TARGETS;PARAMS")
  if(A_UNPARSED_ARGUMENTS OR NOT A_TARGETS)
    message(FATAL_ERROR "amq_add_halide_library(${name}): with AMQ_PREBUILT_KERNELS only "
                        "FROM, GENERATOR, FUNCTION_NAME, TARGETS, PARAMS and USE_RUNTIME are "
                        "known; got '${A_UNPARSED_ARGUMENTS}' (TARGETS '${A_TARGETS}')")
  endif()
  # Named as add_halide_library names them (HalideGeneratorHelpers.cmake):
  # one object per target, and a wrapper when there are several.
  list(LENGTH A_TARGETS n)
  if(n EQUAL 1)
    set(objects "${name}.o")
  else()
    set(objects ${A_TARGETS})
    list(TRANSFORM objects PREPEND "${name}-")
    list(TRANSFORM objects APPEND "-no_runtime.o")
    list(APPEND objects "${name}_wrapper.o")
  endif()
  _amq_copy_prebuilt(copies ${objects} "${name}.h")
  add_library(${name} STATIC ${objects})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON LINKER_LANGUAGE CXX)
  # Depends on the header too (add_halide_library's ${name}.update does the same).
  add_custom_target(${name}.update DEPENDS ${copies})
  add_dependencies(${name} ${name}.update)
  target_include_directories(${name} INTERFACE "$<BUILD_INTERFACE:${CMAKE_CURRENT_BINARY_DIR}>")
  if(A_USE_RUNTIME)
    target_link_libraries(${name} INTERFACE ${A_USE_RUNTIME})
  else()
    _amq_copy_prebuilt(rt_copies "${name}.runtime.o")
    add_library(${name}.runtime STATIC "${name}.runtime.o")
    set_target_properties(${name}.runtime PROPERTIES LINKER_LANGUAGE CXX)
    target_link_libraries(${name}.runtime INTERFACE Halide::Runtime Threads::Threads ${CMAKE_DL_LIBS})
    target_link_libraries(${name} INTERFACE ${name}.runtime)
  endif()
endfunction()

# amq_import_generators([name]): name defaults to amq_generators.
function(amq_import_generators)
  set(name amq_generators)
  if(ARGC GREATER 0)
    set(name ${ARGV0})
  endif()
  set(exe "${AMQ_PREBUILT_KERNELS}/generators/${name}")
  add_executable(${name} IMPORTED GLOBAL)
  set_target_properties(${name} PROPERTIES IMPORTED_LOCATION "${exe}")
endfunction()
