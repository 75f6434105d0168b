#!/usr/bin/env bash
# amq's binaries under qemu-x86_64 -cpu MODEL: user-mode emulation of an older
# x86-64 CPU, whose CPUID the kernels' run-time dispatch reads as on real
# hardware (qemu 7.2 raises SIGILL for an instruction the model lacks, so a
# variant chosen wrongly fails here). Native runs with AMQ_ISA=ISA (the forced
# variant) are the reference.
#
#   qemu_cpu_check.sh CPU ISA probe PROBE
#       the ISA probe, under CPU, picks ISA and prints, bit for bit, what it
#       prints natively with AMQ_ISA=ISA;
#   qemu_cpu_check.sh CPU ISA gtest BINARY FILTER
#       the GoogleTest cases FILTER of BINARY pass under CPU (and a binary that
#       prints "kernels run on <variant>" names ISA);
#   qemu_cpu_check.sh CPU ISA run AMQ MODEL INPUTS WORKDIR
#       `amq run` under CPU writes the outputs file it writes natively with
#       AMQ_ISA=ISA, byte for byte, and within 1e-5 per value the file of this
#       machine's own variant; `amq info` under CPU names ISA.
#
# Exits 77 (skipped) when qemu-x86_64 is not installed.
set -euo pipefail

cpu=$1 isa=$2 mode=$3
shift 3
qemu=$(command -v qemu-x86_64 || true)
if [[ -z "$qemu" ]]; then
  echo "qemu-x86_64 not found (Debian package qemu-user)"
  exit 77
fi
emulate() { env -u AMQ_ISA "$qemu" -cpu "$cpu" "$@"; }

case "$mode" in
  probe)
    probe=$1
    native=$(AMQ_ISA=$isa "$probe")
    emulated=$(emulate "$probe")
    first=${emulated%%$'\n'*}
    if [[ "$first" != "isa $isa" ]]; then
      echo "under -cpu $cpu the kernels picked '$first', expected 'isa $isa'"
      exit 1
    fi
    if [[ "$native" != "$emulated" ]]; then
      echo "under -cpu $cpu the probe's outputs differ from the native AMQ_ISA=$isa run:"
      diff <(echo "$native") <(echo "$emulated") | head -20
      exit 1
    fi
    echo "-cpu $cpu: isa $isa, $(echo "$emulated" | wc -l) lines identical to the native AMQ_ISA=$isa run"
    ;;
  gtest)
    binary=$1 filter=$2
    out=$(emulate "$binary" --gtest_filter="$filter" --gtest_brief=1 2>&1) || {
      echo "$out"
      exit 1
    }
    echo "$out"
    # A binary that names the variant it runs (amq_tests_cells) must name ISA.
    if grep -q "kernels run on" <<<"$out" && ! grep -q "kernels run on $isa\$" <<<"$out"; then
      echo "under -cpu $cpu the kernels did not run on $isa"
      exit 1
    fi
    ;;
  run)
    amq=$1 model=$2 inputs=$3 work=$4
    mkdir -p "$work"
    info=$(emulate "$amq" info --json)
    if ! grep -Eq "\"isa\": *\"$isa\"" <<<"$info"; then
      echo "amq info under -cpu $cpu does not name the $isa kernels:"
      echo "$info"
      exit 1
    fi
    native=$work/native_$isa.safetensors emulated=$work/qemu_${cpu}.safetensors
    rm -f "$native" "$emulated"
    AMQ_ISA=$isa "$amq" run "$model" --inputs "$inputs" --outputs "$native" --threads 2
    emulate "$amq" run "$model" --inputs "$inputs" --outputs "$emulated" --threads 2
    if ! cmp "$native" "$emulated"; then
      echo "amq run under -cpu $cpu wrote another file than natively with AMQ_ISA=$isa"
      exit 1
    fi
    echo "-cpu $cpu: amq run wrote the same $(stat -c %s "$emulated") bytes as natively with AMQ_ISA=$isa"
    # Against this machine's own variant: the variants differ in FMA contraction
    # and vector width, which moves results by a few ulps (1e-7 on these
    # models), so the check is |difference| <= 1e-5 per value.
    default=$work/native_default.safetensors
    rm -f "$default"
    env -u AMQ_ISA "$amq" run "$model" --inputs "$inputs" --outputs "$default" --threads 2
    "${PYTHON:-/usr/bin/python3}" - "$default" "$emulated" <<'PY'
import json, struct, sys
from array import array


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    out = {}
    for name, t in json.loads(b[8:8 + n]).items():
        if name != "__metadata__":
            out[name] = array("f", b[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]])
    return out


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys(), (a.keys(), b.keys())
worst = 0.0
for name in a:
    assert len(a[name]) == len(b[name]), name
    worst = max([worst] + [abs(x - y) for x, y in zip(a[name], b[name])])
print("max |difference| from this machine's variant: %.3g (limit 1e-5)" % worst)
sys.exit(0 if worst <= 1e-5 else 1)
PY
    ;;
  *)
    echo "unknown mode '$mode' (probe, gtest, run)"
    exit 2
    ;;
esac
