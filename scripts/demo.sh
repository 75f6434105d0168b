#!/usr/bin/env bash
# Installs the dependencies, builds amq and shows what it does, step by step.
# See scripts/common.sh for AMQ_BUILD_DIR and AMQ_CMAKE_ARGS.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

amq_prepare

AMQ="$AMQ_BUILD_DIR/tools/amq"

# The demo's steps, in order: one title each. To add a step, add its title
# here and its commands below with the next number.
STEPS=(
  "amq info"
  "the demo language model (LSTM 300, PTB): every quantizer at 2, 3 and 4 bits"
  "quantize it: alternating, W2A2"
  "tune the kernels this model needs for this CPU (about 2 minutes, resumes from earlier records), choose fused or separate step kernels for its layers, rebuild with them"
  "GEMV benchmark: every shape and bit width, 1 thread"
  "GEMV benchmark: 4096x2048, W2A2, 2 threads, JSON"
  "perplexity and tokens/s on ptb.test.txt in one table: float, quantized after training and quantization-aware trained (amq eval --compare, 1 thread); then the fastest configuration within 2% of float: every matrix W2A3, trained with the quantizers"
  "the LSTM runner against oneDNN f32 and int8: H=1024, W2A2, 1 thread"
  "install amq, generate kernels for this CPU, build examples/rnn_app against them, run it"
  "from Python: a PyTorch encoder in, a faster one out (examples/python); amq against torch, 1 thread"
)

# step N: prints the heading of step N.
step() {
  echo
  echo "== $1/${#STEPS[@]} ${STEPS[$1 - 1]} =="
}

MODEL=models/ptb_lstm300.safetensors
TEST_TEXT=../shared/data/ptb/ptb.test.txt
OUT="$AMQ_BUILD_DIR/demo"
mkdir -p "$OUT"

step 1
"$AMQ" info

step 2
"$AMQ" quantize --in "$MODEL" --compare

step 3
"$AMQ" quantize --in "$MODEL" --method alternating --wbits 2 --abits 2 -o "$OUT/ptb_w2a2.amq"
"$AMQ" info "$OUT/ptb_w2a2.amq" | head -6

step 4
# Every (pipeline, shape, bits) the runner calls for this model, within the
# budget; records go to schedules/records/<cpu-id>.jsonl and the winners to
# schedules/<cpu-id>.json, which the build uses on this CPU (docs/TUNING.md).
"$AMQ" tune --model "$OUT/ptb_w2a2.amq" --budget "${AMQ_DEMO_TUNE_BUDGET:-120}"
# The model's largest product against Halide's autoschedulers (the search above
# is resumed, not repeated): tuned vs hand defaults vs the best autoscheduler.
"$AMQ" tune --pipeline bgemv --shape 1200x300 --bits W2A2 --budget 30 --compare-autoschedulers
# The schedules file changed: the build configures again and rebuilds the
# kernels whose knobs changed (nothing if none did).
amq_phase rebuild amq_build
# The model's layer steps on the fused step kernel and on the separate kernels,
# as just built; the faster goes to the schedules file's "steps", which the
# build links (the runtime's table only: no kernel is built again).
"$AMQ" tune --steps --model "$OUT/ptb_w2a2.amq"
amq_phase relink amq_build
"$AMQ" info | grep -E "^(Layout|Schedule|Steps):"

step 5
"$AMQ" bench gemv --all --threads 1

step 6
"$AMQ" bench gemv --shape 4096x2048 --bits W2A2 --threads 2 --json

step 7
# docs/ACCURACY.md has the full table (and the train_qat.py commands of the
# files under models/). The QAT W2A3 model, every matrix quantized, is the
# fastest configuration within 2% of float's perplexity there.
"$AMQ" eval "$MODEL" models/ptb_lstm300_qat_w2a3.amq models/ptb_lstm300_qat_w3a3.amq \
  models/ptb_lstm300_qat_w2a2.amq --text "$TEST_TEXT" --compare \
  --config float --config w3a3 --config w2a3,lm --config w2a2,lm
"$AMQ" info models/ptb_lstm300_qat_w2a3.amq | head -8
"$AMQ" eval models/ptb_lstm300_qat_w2a3.amq --text "$TEST_TEXT"

step 8
"$AMQ" bench rnn --arch lstm --hidden 1024 --bits W2A2 --threads 1

step 9
# The same script as the ctest install_rnn_app: cmake --install into a prefix,
# examples/rnn_app built with find_package(amq), amq generate --target host,
# rnn_app rebuilt on the generated kernels and run on the demo model.
bash tests/install_check.sh "$AMQ_BUILD_DIR" "$AMQ_ROOT" "$(cd "$OUT" && pwd)/install" Ninja c++

step 10
# The amq Python module of this build (docs/PYTHON.md): the example a user copies,
# then amq's W2A2 drop-in LSTM against torch's float and dynamic int8 nn.LSTM in
# the same process (--quick: H = 256 and 1024 and the bidirectional LSTMP, batch 1).
PYTHONPATH="$AMQ_BUILD_DIR/python" "$AMQ_PYTHON" examples/python/speech_encoder.py
PYTHONPATH="$AMQ_BUILD_DIR/python" "$AMQ_PYTHON" bench/bench_python.py --quick \
  --amq "$AMQ" --json "$OUT/bench_python.json"

echo
amq_print_timings
echo "== demo done =="
