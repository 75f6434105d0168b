#!/usr/bin/env bash
# Tunes bgemv on the spec's shapes and bit pairs (quantize/include/amq/spec.h:
# the shapes the issue names, W2A2 and W3A3), each with Halide's three
# autoschedulers compared in the same process, and prints the table of
# docs/TUNING.md.
#
#   autotune/tune_spec.sh BUILD_DIR OUT_DIR [BUDGET_SECONDS]
#   autotune/tune_spec.sh BUILD_DIR OUT_DIR BUDGET_SECONDS ISA...
#
# With ISA (avx512, avx2, sse41): tunes those kernel variants instead (amq tune
# --isa, no autoschedulers), OUT_DIR/tune_bgemv_<shape>_w<W>a<A>_<isa>.json,
# and prints the table of tuned vs hand defaults per variant.
#
# Writes OUT_DIR/limits.json (amq_bench_limits: this CPU's XOR+popcount+add
# peak and read bandwidth, for the table's floor column) and
# OUT_DIR/tune_bgemv_<shape>_w<W>a<A>.json (amq tune --json) for each problem;
# records and schedules go to the source tree's defaults
# (schedules/records/<cpu-id>.jsonl, schedules/<cpu-id>.json), so a second run
# resumes the searches and only redoes the comparisons.
set -euo pipefail
BUILD=${1:?usage: tune_spec.sh BUILD_DIR OUT_DIR [BUDGET_SECONDS]}
OUT=${2:?usage: tune_spec.sh BUILD_DIR OUT_DIR [BUDGET_SECONDS]}
BUDGET=${3:-90}
ISAS=("${@:4}")
AMQ="$BUILD/tools/amq"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
if ((${#ISAS[@]})); then
  files=()
  for isa in "${ISAS[@]}"; do
    for shape in 1024x1024 4096x1024 4096x2048; do
      for bits in W2A2 W3A3; do
        f="$OUT/tune_bgemv_${shape}_$(echo "$bits" | tr 'WA' 'wa')_${isa}.json"
        echo "== amq tune --pipeline bgemv --shape $shape --bits $bits --isa $isa --budget $BUDGET" >&2
        "$AMQ" tune --pipeline bgemv --shape "$shape" --bits "$bits" --isa "$isa" \
          --budget "$BUDGET" --json >"$f"
        files+=("$f")
      done
    done
  done
  exec /usr/bin/python3 "$HERE/tune_table.py" --variants "${files[@]}"
fi
limits=()
if [[ -x "$BUILD/bench/amq_bench_limits" ]]; then
  echo "== amq_bench_limits (this CPU's floors)" >&2
  "$BUILD/bench/amq_bench_limits" --benchmark_repetitions=9 --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$OUT/limits.json"
  limits=(--limits "$OUT/limits.json")
fi
files=()
for shape in 1024x1024 4096x1024 4096x2048; do
  for bits in W2A2 W3A3; do
    f="$OUT/tune_bgemv_${shape}_$(echo "$bits" | tr 'WA' 'wa').json"
    echo "== amq tune --pipeline bgemv --shape $shape --bits $bits --budget $BUDGET" >&2
    "$AMQ" tune --pipeline bgemv --shape "$shape" --bits "$bits" --budget "$BUDGET" \
      --compare-autoschedulers --json >"$f"
    files+=("$f")
  done
done
/usr/bin/python3 "$HERE/tune_table.py" "${limits[@]}" "${files[@]}"
