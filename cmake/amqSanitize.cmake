# -DAMQ_SANITIZE=address,undefined | thread: amq's own C++ (quantize/, runtime/,
# autotune/, tools/, bench/, tests/) compiled and linked with -fsanitize=<value>.
# The tuner too: its library, with the pipelines' Halide code of generators/*.h
# compiled into it, and amq_tests_autotune (libHalide itself, LLVM and the code
# they JIT-compile are not instrumented). Not the Halide generators nor the AOT
# kernels they write: generated code is not instrumented by -fsanitize, and the
# generators only run at build time. The CI sanitizer builds take those from the
# main build (-DAMQ_PREBUILT_KERNELS, see amqPrebuiltKernels.cmake).
# docs/RELIABILITY.md: what runs under which.
#
# amq_apply_sanitizers(), called after every add_subdirectory: the flags, and
# <build>/CTestCustom.cmake, read by ctest in that folder, which leaves out the
# tests that cannot run (or only repeat the main build's) in a sanitizer build
# and sets the sanitizers' run-time options.

set(AMQ_SANITIZE "" CACHE STRING
    "Sanitizers for amq's own code: empty, address,undefined (or one of them) or thread")
set_property(CACHE AMQ_SANITIZE PROPERTY STRINGS "" "address,undefined" "address" "undefined"
                                                 "thread")
if(AMQ_SANITIZE)
  string(REPLACE "," ";" amq_sanitizers "${AMQ_SANITIZE}")
  foreach(s IN LISTS amq_sanitizers)
    if(NOT s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "AMQ_SANITIZE=${AMQ_SANITIZE}: '${s}' is not a sanitizer amq builds "
                          "with; expected address,undefined or thread")
    endif()
  endforeach()
  if("thread" IN_LIST amq_sanitizers AND "address" IN_LIST amq_sanitizers)
    message(FATAL_ERROR "AMQ_SANITIZE=${AMQ_SANITIZE}: thread and address cannot be combined; "
                        "use two builds")
  endif()
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang)$")
    message(FATAL_ERROR "AMQ_SANITIZE needs GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  message(STATUS "Sanitizers for amq's own code: ${AMQ_SANITIZE}")
endif()

function(amq_apply_sanitizers)
  if(NOT AMQ_SANITIZE)
    return()
  endif()
  set(sanitize "${AMQ_SANITIZE}")
  if("undefined" IN_LIST amq_sanitizers)
    # Not part of GCC's "undefined": a float converted to an integer type that
    # cannot hold it (the quantizers round floats to codes).
    string(APPEND sanitize ",float-cast-overflow")
  endif()
  # -O1 -g1: quicker to build than -O3, and the reports have file:line.
  # -fno-sanitize-recover=all: an UndefinedBehaviorSanitizer report fails the test.
  set(compile -fsanitize=${sanitize} -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g1)
  # amq's libraries (quantize/, runtime/), the code under test, at -O1. The code
  # that drives them (autotune/, tools/, bench/, tests/) at -O0: those files
  # compile the inline code of Halide.h (1.2 MB), nlohmann/json, CLI11 and
  # GoogleTest, and instrumented at -O1 they took 530 s of the ASan build's 740 s
  # of CPU (at -O0 about half: cmd_generate.cpp 66 s against 36 s). Their tests
  # spend their time in the libraries, libHalide, LLVM and the JIT code, not in
  # the driving code. ASan checks as much at -O0; UBSan's object-size check finds
  # less there, ASan covers it.
  set(compile_O0_dirs autotune tools bench tests)
  set(count 0)
  foreach(dir quantize runtime autotune tools bench tests)
    if(NOT EXISTS "${PROJECT_SOURCE_DIR}/${dir}/CMakeLists.txt")
      continue()
    endif()
    get_property(targets DIRECTORY "${PROJECT_SOURCE_DIR}/${dir}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      set(t_compile ${compile})
      if(dir IN_LIST compile_O0_dirs)
        list(TRANSFORM t_compile REPLACE "^-O1$" "-O0")
      endif()
      if(type MATCHES "^(STATIC|OBJECT)_LIBRARY$")
        target_compile_options(${t} PRIVATE ${t_compile})
        math(EXPR count "${count} + 1")
      elseif(type MATCHES "^(EXECUTABLE|SHARED_LIBRARY|MODULE_LIBRARY)$")
        target_compile_options(${t} PRIVATE ${t_compile})
        target_link_options(${t} PRIVATE -fsanitize=${sanitize})
        math(EXPR count "${count} + 1")
      endif()
    endforeach()
  endforeach()
  message(STATUS "AMQ_SANITIZE: -fsanitize=${sanitize} on ${count} targets")

  # The fuzzers are their own ASan+UBSan builds (clang, tests/CMakeLists.txt),
  # the same in every configuration: build and run them in the main build only.
  foreach(t amq_fuzz_model_loader amq_fuzz_run_inputs)
    if(TARGET ${t})
      set_target_properties(${t} PROPERTIES EXCLUDE_FROM_ALL TRUE)
    endif()
  endforeach()

  # Tests left out, each with its reason (written into CTestCustom.cmake).
  set(ignore "")
  set(reasons "")
  macro(amq_sanitizer_skip label regex reason)
    set(found OFF)
    foreach(test IN LISTS all_tests)
      if(test MATCHES "${regex}")
        list(APPEND ignore ${test})
        set(found ON)
      endif()
    endforeach()
    if(found)
      string(APPEND reasons "# ${label}: ${reason}\n")
    endif()
  endmacro()
  set(all_tests "")
  foreach(dir tests tools)
    get_property(t DIRECTORY "${PROJECT_SOURCE_DIR}/${dir}" PROPERTY TESTS)
    list(APPEND all_tests ${t})
  endforeach()
  amq_sanitizer_skip("fuzz.*" "^fuzz\\." "the fuzzer is built with clang's ASan+UBSan in every build; it runs in the main build")
  amq_sanitizer_skip("autoschedule.*" "^autoschedule\\." "runs only amq_generators (libHalide and its autoschedulers), none of the sanitized code")
  amq_sanitizer_skip("install_rnn_app" "^install_rnn_app$" "links an application built without -fsanitize against the installed, sanitized archives")
  amq_sanitizer_skip("cross_kernels.*" "^cross_kernels\\." "Halide code generation and aarch64 code under qemu-user; neither is instrumented")
  # GoogleTest cases are listed at build time (gtest_discover_tests), after this
  # runs: named here literally.
  macro(amq_sanitizer_skip_gtest name reason)
    list(APPEND ignore ${name})
    string(APPEND reasons "# ${name}: ${reason}\n")
  endmacro()
  # The longest runs under ASan: all but a sliver of their time is Halide
  # compiling candidates (libHalide, LLVM and the JIT code, not instrumented);
  # the tuner's own code paths they take are the same as the shorter Tuner.*,
  # Evaluation.* and amq_cli_tune_* tests here.
  amq_sanitizer_skip_gtest(OtherPipelines.EveryCandidateOfTheSmallSpacesMatchesTheReference
    "compiles every candidate of four knob spaces in libHalide's JIT (not instrumented): the main build runs it")
  amq_sanitizer_skip_gtest(IsaVariants.TuningALowerVariantIsNeverSlowerThanItsDefaults
    "tunes and times JIT-compiled candidates (not instrumented) of the avx2 variant: the main build runs it")
  amq_sanitizer_skip("python_qat*" "^python_qat"
    "its time is torch training; the amq commands it runs are those of the amq_cli_* tests here: the main build runs it")
  amq_sanitizer_skip("amq_cli_tune_model" "^amq_cli_tune_model$"
    "tunes each problem of a model, nearly all of it JIT compilation (not instrumented): the main build runs it")
  amq_sanitizer_skip("qemu_cpu.*" "^qemu_cpu\\." "sanitized x86 binaries under qemu-x86_64 (its CPU models) time out: the main build runs them")

  if("thread" IN_LIST amq_sanitizers)
    set(tsan "halt_on_error=1:second_deadlock_stack=1")
    if(EXISTS "${PROJECT_SOURCE_DIR}/tests/tsan.supp")
      string(APPEND tsan ":suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp")
    endif()
    set(env "set(ENV{TSAN_OPTIONS} \"${tsan}\")")
    set(env_name TSAN_OPTIONS)
  else()
    # exitcode 86: a sanitizer report is not mistaken for the exit status 1 or
    # 2 that the command-line tests expect of refusals.
    # quarantine_size_mb=64 (ASan's default is 256): freed memory is held back
    # that long to catch a use after free; LLVM frees hundreds of MB while it
    # compiles a tuner candidate, and cycling them through 256 MB made the
    # tuner's tests mostly page faults (Tuner.SmallRunVerifiesWritesSchedulesAndResumes:
    # 23 s, 15 s at 64 MB).
    set(env "set(ENV{ASAN_OPTIONS} \"exitcode=86:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:quarantine_size_mb=64\")
  set(ENV{UBSAN_OPTIONS} \"exitcode=86:print_stacktrace=1:halt_on_error=1\")
  set(ENV{LSAN_OPTIONS} \"suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp\")")
    set(env_name ASAN_OPTIONS)
  endif()
  string(REPLACE ";" "\n  " ignore_lines "${ignore}")
  file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/CTestCustom.cmake" CONTENT
"# Written by cmake/amqSanitize.cmake (AMQ_SANITIZE=${AMQ_SANITIZE}); ctest reads it.
# Tests this sanitizer build does not run:
${reasons}set(CTEST_CUSTOM_TESTS_IGNORE
  ${ignore_lines})
# The sanitizers' options, unless the environment sets them.
if(NOT DEFINED ENV{${env_name}})
  ${env}
endif()
")
endfunction()
