#!/bin/bash
# The goal problems, five rounds, the ratios to the floor taken round by round
# (amq bench rnn / gemv of commit 02c5bbb on). Run from the repository root.
out=docs/data/amd-epyc-f26m2/round_floor
for r in ${ROUNDS:-1 2 3 4 5}; do
  for a in lstm gru; do
    for h in 128 256 512 1024; do
      build/tools/amq bench rnn --arch $a --hidden $h --bits W2A2 --threads 1 --json --no-avx2-onednn \
        > $out/rnn-$a-$h-r$r.json
    done
    build/tools/amq bench rnn --arch $a --hidden 1024 --batch 8 --bits W2A2 --threads 1 --json \
      --no-avx2-onednn > $out/rnn-$a-1024-b8-r$r.json
  done
  if [ $r -le 3 ]; then
    for s in 1024x1024 4096x1024 4096x2048 16384x4096; do for b in W2A2 W3A3; do
      build/tools/amq bench gemv --shape $s --bits $b --threads 1 --rounds 21 --json \
        > $out/gemv-$s-$b-r$r.json
    done; done
  fi
done
