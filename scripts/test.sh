#!/usr/bin/env bash
# Installs the dependencies, configures, builds and runs the whole test suite;
# then again under AddressSanitizer + UndefinedBehaviorSanitizer in
# $AMQ_BUILD_DIR-asan, and the runner's and thread pool's tests under ThreadSanitizer in
# $AMQ_BUILD_DIR-tsan (both taking the kernels from $AMQ_BUILD_DIR; skipped with
# AMQ_SANITIZERS=0; docs/RELIABILITY.md). Exits with 0 only when every phase
# passed. See scripts/common.sh for AMQ_BUILD_DIR and AMQ_CMAKE_ARGS.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

trap amq_print_timings EXIT

amq_prepare

rc=0
amq_phase test ctest --test-dir "$AMQ_BUILD_DIR" --output-on-failure -j"$AMQ_JOBS" || rc=$?

if [[ "${AMQ_SANITIZERS:-1}" != 0 ]]; then
  # The whole suite (less the tests listed in $AMQ_BUILD_DIR-asan/CTestCustom.cmake).
  if amq_phase asan-build amq_sanitizer_build "$AMQ_BUILD_DIR-asan" address,undefined; then
    amq_phase asan-test ctest --test-dir "$AMQ_BUILD_DIR-asan" --output-on-failure \
      -j"$AMQ_JOBS" || rc=$?
  else
    rc=1
  fi
  # tests/test_rnn.cpp (sessions shared by 6 threads, the C API), with their
  # fixtures, and amq's thread pool (tests/test_thread_pool.cpp, less the fork
  # test: ThreadSanitizer stops a forked child that starts threads).
  if amq_phase tsan-build amq_sanitizer_build "$AMQ_BUILD_DIR-tsan" thread amq_tests_rnn \
    amq_tests_thread_pool; then
    amq_phase tsan-test ctest --test-dir "$AMQ_BUILD_DIR-tsan" --output-on-failure \
      -j"$AMQ_JOBS" -R '^(Rnn|CApi|ThreadPool\.)' || rc=$?
  else
    rc=1
  fi
fi
exit "$rc"
