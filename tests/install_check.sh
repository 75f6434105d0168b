#!/usr/bin/env bash
# ctest install_rnn_app: the install, tested rather than assumed.
#   install_check.sh BUILD_DIR SOURCE_DIR WORK_DIR CMAKE_GENERATOR CXX_COMPILER
# 1. cmake --install BUILD_DIR into WORK_DIR/prefix;
# 2. examples/rnn_app, a separate project, configured with find_package(amq)
#    against that prefix only, built and run on the demo model (float, then
#    quantized W2A2 in memory);
# 3. the installed amq generates host kernels for W2A2 (finding the installed
#    amq_generators, manifest and schedules); examples/kernels_app is built from
#    the generated directory with make;
# 4. the demo model quantized W2A2 by the installed amq; `amq generate --model`
#    writes exactly the kernels it calls (check_generated_manifest.py: the knobs
#    of its manifest.json are the schedules file's winners); rnn_app is rebuilt
#    with them (-DAMQ_GENERATED_KERNELS), runs the model and must report the
#    generated bgemv_w2a2.
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3 GEN=$4 CXX=$5
PREFIX=$WORK/prefix
MODEL=$SRC/models/ptb_lstm300.safetensors

rm -rf "$WORK"
mkdir -p "$WORK"
cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log"
echo "installed into $PREFIX: $(find "$PREFIX" -type f | wc -l) files"
for f in bin/amq bin/amq_generators lib/libamq_runtime.a lib/libamq_kernels.a \
         lib/libamq_quantize.a lib/cmake/amq/amqConfig.cmake include/amq/rnn.h \
         include/amq/halide/HalideBuffer.h share/amq/schedules/defaults.json \
         share/amq/schedules/manifest.json share/amq/schedules/build.json \
         share/amq/templates/amqKernels.cmake.in share/amq/templates/amq_kernels.h.in; do
  [[ -f $PREFIX/$f ]] || { echo "missing after install: $f"; exit 1; }
done

app() {  # app <build dir> [cmake args...]: configure and build rnn_app
  local dir=$1
  shift
  cmake -S "$SRC/examples/rnn_app" -B "$dir" -G "$GEN" -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@" >"$dir.configure.log" ||
    { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" >"$dir.build.log" || { cat "$dir.build.log"; exit 1; }
}

app "$WORK/app"
"$WORK/app/rnn_app" "$MODEL" --steps 4
out=$("$WORK/app/rnn_app" "$MODEL" --steps 4 --quantize W2A2)
echo "$out"
grep -q "W2A2" <<<"$out" || { echo "rnn_app did not run the model quantized"; exit 1; }
installed_kernel=$(grep "^kernel:" <<<"$out")

"$PREFIX/bin/amq" generate --target host --bits W2A2 --out "$WORK/kernels"
# examples/kernels_app: the generated directory alone, with a plain Makefile.
make -f "$SRC/examples/kernels_app/Makefile" KERNELS="$WORK/kernels" OUT="$WORK" CXX="$CXX" \
  >"$WORK/make.log" 2>&1 || { cat "$WORK/make.log"; exit 1; }
"$WORK/kernels_app" 129 1000

PY=${PYTHON:-/usr/bin/python3}
"$PREFIX/bin/amq" quantize --in "$MODEL" --method alternating --wbits 2 --abits 2 \
  -o "$WORK/model_w2a2.amq" >"$WORK/quantize.log"
"$PREFIX/bin/amq" info "$WORK/model_w2a2.amq" --json >"$WORK/model_info.json"
"$PREFIX/bin/amq" generate --target host --model "$WORK/model_w2a2.amq" --out "$WORK/kernels_model"
"$PY" "$SRC/tests/check_generated_manifest.py" "$WORK/kernels_model/manifest.json" \
  "$PREFIX/share/amq/schedules/build.json" "$PREFIX/share/amq/schedules/manifest.json" \
  "$WORK/model_info.json"
app "$WORK/app_generated" -DAMQ_GENERATED_KERNELS="$WORK/kernels_model"
out=$("$WORK/app_generated/rnn_app" "$WORK/model_w2a2.amq" --steps 4)
echo "$out"
generated_kernel=$(grep "^kernel:" <<<"$out")
# The generated library is single-target (host); the installed one dispatches.
if [[ $generated_kernel == "$installed_kernel" ]]; then
  echo "rnn_app built with the generated kernels still reports the installed bgemv_w2a2"
  exit 1
fi
echo "install check passed"
