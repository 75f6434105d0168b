#!/usr/bin/env bash
# The avx512 kernel variant runs on every CPU with the features its Halide target
# names, and Halide 14 needs avx512_sapphirerapids there for vpopcntq. LLVM's
# sapphirerapids target also has AVX512-FP16, which Zen 4 and Zen 5 lack (and
# Halide's run-time check does not ask for), so an FP16 instruction in an
# avx512 object is a SIGILL waiting on those CPUs. This scans the objects.
#
#   avx512_fp16_check.sh DIR...   every *avx512*.o under each DIR; exits 1 naming
#                                 each object and FP16 instruction found
set -euo pipefail
f16c='^(vcvtph2ps|vcvtps2ph)$'  # F16C conversions, not FP16 arithmetic
scan() {
  objdump -d --no-show-raw-insn "$1" | awk '{print $2}' |
    { grep -E '^v[a-z0-9]*(ph|sh)$' || true; } | { grep -vE "$f16c" || true; } | sort | uniq -c
}
# The scan must see an FP16 instruction where there is one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'vmovsh %%xmm1, %%xmm2, %%xmm3\nvcvtph2ps %%xmm1, %%ymm2\n' > "$tmp/t.s"
as -o "$tmp/t.o" "$tmp/t.s"
if [[ "$(scan "$tmp/t.o")" != *vmovsh* || "$(scan "$tmp/t.o")" == *vcvtph2ps* ]]; then
  echo "avx512_fp16_check.sh: the scan does not tell vmovsh (FP16) from vcvtph2ps (F16C)"
  exit 2
fi
count=0 nbad=0
for dir in "$@"; do
  while IFS= read -r -d '' obj; do
    count=$((count + 1))
    found=$(scan "$obj")
    if [[ -n "$found" ]]; then
      echo "$obj: AVX512-FP16 instructions:"
      echo "$found"
      nbad=$((nbad + 1))
    fi
  done < <(find "$dir" -maxdepth 1 -name '*avx512*.o' -print0)
done
if [[ $count -eq 0 ]]; then
  echo "no avx512 kernel objects under: $*"
  exit 1
fi
echo "$count avx512 kernel objects scanned, $nbad with AVX512-FP16 instructions"
exit $((nbad > 0 ? 1 : 0))
