#!/usr/bin/env bash
# ctest aarch64_kernels: `amq generate --target aarch64` kernels, linked with the
# AArch64 cross compiler into kernel_check.cpp (plus the scalar references) and
# run under qemu-user against those references; then examples/kernels_app,
# cross-built with its Makefile, under qemu too.
#   run_kernel_check.sh AMQ SOURCE_DIR WORK_DIR [TARGET]
# Exits 77 (ctest SKIP) only when the cross compiler or qemu is not installed
# (scripts/install-deps.sh installs both: g++-aarch64-linux-gnu, qemu-user).
set -euo pipefail
AMQ=$1 SRC=$2 WORK=$3 TARGET=${4:-aarch64}

CXX=${AMQ_AARCH64_CXX:-aarch64-linux-gnu-g++}
if ! command -v "$CXX" >/dev/null; then
  echo "SKIP: the AArch64 cross compiler $CXX is not installed (package g++-aarch64-linux-gnu)"
  exit 77
fi
QEMU=""
for q in qemu-aarch64 qemu-aarch64-static; do
  if command -v "$q" >/dev/null; then QEMU=$q; break; fi
done
if [[ -z $QEMU ]]; then
  echo "SKIP: qemu-aarch64 is not installed (package qemu-user)"
  exit 77
fi

rm -rf "$WORK"
mkdir -p "$WORK"
"$AMQ" generate --target "$TARGET" --bits W2A2,W3A3 --out "$WORK/kernels"

K=$WORK/kernels
libs=()
for k in bgemv_w2a2 bgemv_w3a3 quantize_act_a2_t2 quantize_act_a3_t2 pack_bits_kernel f32_gemv; do
  libs+=("$K/amq_$k.a")
done
# Static, so that qemu needs no AArch64 sysroot at run time.
"$CXX" -std=c++17 -O2 -static -I"$K" -I"$SRC/quantize/include" \
  "$SRC/tests/aarch64/kernel_check.cpp" "$SRC/quantize/src/reference.cpp" \
  "${libs[@]}" "$K/amq_halide_runtime.a" -lpthread -ldl -o "$WORK/kernel_check" 2>&1 |
  { grep -v -e "statically linked applications requires at runtime" \
      -e "in function .halide_default_load_library" || true; }
file "$WORK/kernel_check" 2>/dev/null || true
"$QEMU" "$WORK/kernel_check"
# examples/kernels_app, cross-built with its plain Makefile, as docs/USING.md shows.
make -f "$SRC/examples/kernels_app/Makefile" KERNELS="$K" OUT="$WORK" CXX="$CXX" LDFLAGS=-static \
  >"$WORK/make.log" 2>&1 || { cat "$WORK/make.log"; exit 1; }
"$QEMU" "$WORK/kernels_app" 129 1000
