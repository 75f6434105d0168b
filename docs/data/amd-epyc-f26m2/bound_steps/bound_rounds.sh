#!/bin/bash
# Rounds of amq bench rnn, the build before FusedStep (base) and after (new) alternating.
out=/work/main/docs/data/amd-epyc-f26m2/bound_steps
R=${R:-6}
for r in $(seq 1 $R); do
  for a in lstm gru; do for h in 64 128 256 512 1024; do for b in base new; do
    bin=/work/main/build/tools/amq; [ $b = base ] && bin=/work/prof/base/amq
    $bin bench rnn --arch $a --hidden $h --bits W2A2 --threads 1 --json --no-avx2-onednn > $out/$b-$a-$h-$r.json 2>/dev/null
  done; done; done
  for a in lstm gru; do for b in base new; do
    bin=/work/main/build/tools/amq; [ $b = base ] && bin=/work/prof/base/amq
    $bin bench rnn --arch $a --hidden 1024 --batch 8 --bits W2A2 --threads 1 --json --no-avx2-onednn > $out/$b-$a-1024b8-$r.json 2>/dev/null
  done; done
  echo "round $r done $(date +%T)"
done
