#!/usr/bin/env bash
# Every kernel function starts on a 64-byte boundary (generators/code_alignment.cpp),
# so that where the linker places a kernel cannot change how its loops fall on
# the CPU's fetch blocks. This reads the section alignment of every function
# in the kernel objects.
#
#   kernel_alignment_check.sh DIR...   every *.o under each DIR but the Halide
#                                      runtime's; exits 1 naming each function
#                                      section aligned to less than 64 bytes
set -euo pipefail
# Function sections (.text.amq_*) and their alignment, one per line.
scan() {
  readelf -SW "$1" | awk '{
    for (i = 1; i <= NF; ++i) if ($i ~ /^\.text\.amq_/) { print $NF, $i; break } }'
}
# The scan must see a 16-byte aligned function where there is one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '.section .text.amq_probe,"ax",@progbits\n.p2align 4\nret\n' > "$tmp/t.s"
as -o "$tmp/t.o" "$tmp/t.s"
if [[ "$(scan "$tmp/t.o")" != "16 .text.amq_probe" ]]; then
  echo "kernel_alignment_check.sh: the scan does not read a function section's alignment"
  echo "(got: $(scan "$tmp/t.o"))"
  exit 2
fi
objects=0 functions=0 nbad=0
for dir in "$@"; do
  while IFS= read -r -d '' obj; do
    objects=$((objects + 1))
    while read -r align name; do
      functions=$((functions + 1))
      if ((align < 64)); then
        echo "$obj: $name is aligned to $align bytes (expected 64)"
        nbad=$((nbad + 1))
      fi
    done < <(scan "$obj")
  done < <(find "$dir" -name '*.o' ! -name '*.runtime.o' -print0)
done
if ((functions == 0)); then
  echo "kernel_alignment_check.sh: no kernel functions found in $* ($objects objects)"
  exit 1
fi
echo "$functions kernel functions in $objects objects; $nbad aligned to less than 64 bytes"
((nbad == 0))
