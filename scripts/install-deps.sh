#!/usr/bin/env bash
# Installs every Debian (bookworm) package amq uses. Quick when all are
# already installed: it asks dpkg only and runs apt-get only for missing ones.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential
  cmake
  ninja-build
  git
  pkg-config
  # Halide 14 (generators/, autotune/ JIT); find_package(Halide) pulls in
  # find_package(LLVM 14) whose config files are in llvm-14-dev
  libhalide14-0-dev
  llvm-14-dev
  # tests/ (GoogleTest, GoogleMock)
  libgtest-dev
  libgmock-dev
  googletest
  # bench/ (Google Benchmark, OpenBLAS and oneDNN baselines)
  libbenchmark-dev
  libopenblas-dev
  libdnnl-dev
  # oneDNN's dnnl-config.cmake calls find_package(OpenCL); libdnnl-dev only
  # recommends this package, and apt-get runs with --no-install-recommends
  ocl-icd-opencl-dev
  # schedules/ records, model metadata (JSON); tools/ command line
  nlohmann-json3-dev
  libcli11-dev
  # runtime/ CPU-feature dispatch
  libcpuinfo-dev
  # python/ (run with /usr/bin/python3): export, demo model training, plots
  python3-torch
  python3-numpy
  python3-matplotlib
  # the `amq` Python module (pybind11) and its tests (pytest, run by ctest)
  pybind11-dev
  python3-pybind11
  python3-pytest
  # cross builds and tests for AArch64 (Halide arm-64 targets under qemu), and
  # the x86-64 kernels under older CPU models (qemu-x86_64 -cpu Nehalem, Haswell)
  qemu-user
  g++-aarch64-linux-gnu
  clang-14
  libclang-rt-14-dev
)

# One dpkg-query for all packages; a package dpkg has never heard of is not
# printed at all, so anything not listed as installed is missing.
declare -A installed=()
while read -r pkg status; do
  if [[ "$status" == "install ok installed" ]]; then installed["$pkg"]=1; fi
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [[ -z "${installed[$pkg]:-}" ]]; then missing+=("$pkg"); fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: error: not root and sudo is not available;" \
         "install these packages as root: ${missing[*]}" >&2
    exit 1
  fi
fi

if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update; then
  echo "install-deps: error: apt-get update failed" >&2
  exit 1
fi
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
     apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"; then
  echo "install-deps: error: apt-get install failed for: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installed ${missing[*]}"
