# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: install, configure, build.
#
# Environment:
#   AMQ_BUILD_DIR   build folder (default: build, relative to the repo root)
#   AMQ_CMAKE_ARGS  extra arguments for the cmake configure step (split on spaces)
#   AMQ_SANITIZERS  0: scripts/test.sh skips the sanitizer builds (default 1)

AMQ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$AMQ_ROOT" || exit 1

AMQ_BUILD_DIR=${AMQ_BUILD_DIR:-build}
AMQ_JOBS=$(nproc)
# Python is always Debian's, which has numpy and torch (a pyenv python3 first
# on PATH may not).
AMQ_PYTHON=/usr/bin/python3
export AMQ_ROOT AMQ_BUILD_DIR AMQ_PYTHON

AMQ_TIMINGS=()

# amq_phase NAME CMD...: runs CMD, prints and records how long it took.
# Returns CMD's status.
amq_phase() {
  local name=$1 start rc=0 secs note=""
  shift
  echo "== $name =="
  start=$(date +%s.%N)
  "$@" || rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  if [[ $rc -ne 0 ]]; then note=" (exit $rc)"; fi
  AMQ_TIMINGS+=("$(printf '%-10s %7ss%s' "$name" "$secs" "$note")")
  echo "== $name: ${secs}s$note =="
  return "$rc"
}

amq_print_timings() {
  echo "== timings =="
  printf '%s\n' "${AMQ_TIMINGS[@]}"
}

amq_install_deps() {
  bash "$AMQ_ROOT/scripts/install-deps.sh"
}

amq_configure() {
  local extra=()
  if [[ -n "${AMQ_CMAKE_ARGS:-}" ]]; then
    read -r -a extra <<<"$AMQ_CMAKE_ARGS"
  fi
  # --no-warn-unused-cli: Python3_EXECUTABLE is set before the project uses it.
  cmake --no-warn-unused-cli -S . -B "$AMQ_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython3_EXECUTABLE="$AMQ_PYTHON" "${extra[@]}"
}

amq_build() {
  cmake --build "$AMQ_BUILD_DIR" -j"$AMQ_JOBS"
}

# amq_sanitizer_build DIR SANITIZERS [TARGET...]: configures DIR with
# -DAMQ_SANITIZE=SANITIZERS, taking the kernels from $AMQ_BUILD_DIR (built
# first), and builds TARGETs (every target when none is named).
amq_sanitizer_build() {
  local dir=$1 sanitize=$2 main extra=() targets=() t
  shift 2
  main=$(cd "$AMQ_BUILD_DIR" && pwd)
  if [[ -n "${AMQ_CMAKE_ARGS:-}" ]]; then
    read -r -a extra <<<"$AMQ_CMAKE_ARGS"
  fi
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --no-warn-unused-cli -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython3_EXECUTABLE="$AMQ_PYTHON" "${extra[@]}" -DAMQ_SANITIZE="$sanitize" \
    -DAMQ_PREBUILT_KERNELS="$main" &&
    cmake --build "$dir" -j"$AMQ_JOBS" "${targets[@]}"
}

# Install, configure and build, each timed.
amq_prepare() {
  amq_phase install amq_install_deps
  amq_phase configure amq_configure
  amq_phase build amq_build
}
