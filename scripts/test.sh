#!/usr/bin/env bash
# Installs the dependencies, configures, builds and runs the whole test suite.
# Exits with ctest's status. See scripts/common.sh for AMQ_BUILD_DIR and
# AMQ_CMAKE_ARGS.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

trap amq_print_timings EXIT

amq_prepare

rc=0
amq_phase test ctest --test-dir "$AMQ_BUILD_DIR" --output-on-failure -j"$AMQ_JOBS" || rc=$?
exit "$rc"
