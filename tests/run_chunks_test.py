#!/usr/bin/env python3
"""amq run in chunks: the outputs file does not depend on --chunk-steps (chunks
that do not divide T, longer than the runner's own 64-step chunks), memory stays
bounded by the chunk as T grows, a bad value in a late chunk leaves no file, and
--threads 1000 runs with a one-line note naming the clamp.

    run_chunks_test.py AMQ FIXTURES MODELS WORKDIR
FIXTURES: the float models and .io files of tests/ (fixture rnn_models); MODELS:
the .amq files the amq_cli_quantize tests write (fixture amq_models).
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

AMQ, FX, MODELS, WORK = sys.argv[1:5]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def write_inputs(path, name, array):
    dtype = {np.float32: "F32", np.int64: "I64"}[array.dtype.type]
    header = json.dumps({name: {"dtype": dtype, "shape": list(array.shape),
                                "data_offsets": [0, array.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        array.tofile(f)


def write_long_x(path, T, width, rng):
    """x [T, 1, width], written 10,000 steps at a time: this process stays small,
    as the peak RSS of its children counts its pages until they exec."""
    header = json.dumps({"x": {"dtype": "F32", "shape": [T, 1, width],
                               "data_offsets": [0, T * width * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        for t0 in range(0, T, 10000):
            n = min(10000, T - t0)
            rng.standard_normal((n, 1, width), dtype=np.float32).tofile(f)


def run(model, inputs, outputs, *extra):
    """(exit code, stderr, peak RSS in MiB) of amq run."""
    p = subprocess.Popen([AMQ, "run", model, "--inputs", inputs, "--outputs", outputs, *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, usage.ru_maxrss / 1024


def same_outputs(model, inputs, name, chunks):
    ref = os.path.join(WORK, name + ".ref.safetensors")
    rc, err, _ = run(model, inputs, ref)
    check(rc == 0, "%s: amq run exits 0 (%s)" % (name, err.strip()))
    ref_bytes = open(ref, "rb").read()
    for c in chunks:
        out = os.path.join(WORK, "%s.chunk%d.safetensors" % (name, c))
        rc, err, _ = run(model, inputs, out, "--chunk-steps", str(c))
        check(rc == 0 and open(out, "rb").read() == ref_bytes,
              "%s: --chunk-steps %d gives the same file, byte for byte" % (name, c))


def main():
    os.makedirs(WORK, exist_ok=True)
    rng = np.random.default_rng(7)
    lstm2, lm_gru = os.path.join(MODELS, "lstm2.amq"), os.path.join(MODELS, "lm_gru.amq")
    gru2 = os.path.join(FX, "gru2.safetensors")

    # The fixtures' own inputs (T = 6 and 5): chunks of 4 and 1.
    same_outputs(lstm2, os.path.join(FX, "lstm2.io.safetensors"), "lstm2", [4, 1])
    same_outputs(gru2, os.path.join(FX, "gru2.io.safetensors"), "gru2", [4])
    same_outputs(lm_gru, os.path.join(FX, "lm_gru.io.safetensors"), "lm_gru", [4, 2])
    # 150 steps: more than the runner's 64-step chunks; 7 and 64 do not divide 150.
    x = rng.standard_normal((150, 3, 37)).astype(np.float32)
    long_x = os.path.join(WORK, "long_x.safetensors")
    write_inputs(long_x, "x", x)
    same_outputs(lstm2, long_x, "lstm2_long", [7, 64, 149])
    same_outputs(gru2, long_x, "gru2_long", [7])
    tokens = rng.integers(0, 70, (150, 2), dtype=np.int64)
    long_tokens = os.path.join(WORK, "long_tokens.safetensors")
    write_inputs(long_tokens, "tokens", tokens)
    same_outputs(lm_gru, long_tokens, "lm_gru_long", [7, 65])

    # A NaN at step 140 (chunk 20 of 7 steps): refused, naming it; no file left.
    x[140, 2, 5] = np.nan
    bad_x = os.path.join(WORK, "bad_x.safetensors")
    write_inputs(bad_x, "x", x)
    bad_dir = os.path.join(WORK, "bad_out")
    os.makedirs(bad_dir, exist_ok=True)
    for f in os.listdir(bad_dir):
        os.remove(os.path.join(bad_dir, f))
    rc, err, _ = run(lstm2, bad_x, os.path.join(bad_dir, "o.safetensors"), "--chunk-steps", "7")
    check(rc == 1 and "tensor 'x': step 140, sequence 2, element 5 is nan" in err
          and err.count("\n") == 1, "a NaN at step 140 is refused in one line: " + err.strip())
    check(os.listdir(bad_dir) == [], "nothing is left behind after the refusal")

    # --threads 1000: accepted, clamped with a one-line note, same outputs.
    out1 = os.path.join(WORK, "threads1.safetensors")
    out1000 = os.path.join(WORK, "threads1000.safetensors")
    run(lstm2, long_x, out1, "--threads", "1")
    rc, err, _ = run(lstm2, long_x, out1000, "--threads", "1000")
    notes = [line for line in err.splitlines() if "note:" in line]
    check(rc == 0 and len(notes) == 1 and "--threads 1000 is more than the" in notes[0]
          and "processors here; using" in notes[0], "--threads 1000: one note: %s" % notes)
    check(open(out1, "rb").read() == open(out1000, "rb").read(),
          "--threads 1000 gives the outputs of --threads 1")

    del x, tokens
    # Memory: 10x the steps in chunks of 1000 costs no more than a few MiB, where
    # holding them would cost (input 20 + hidden 65) x 4 bytes x 180,000 = 58 MiB
    # more for the float model lstm_nobias (and twice that for its outputs).
    nobias = os.path.join(FX, "lstm_nobias.safetensors")
    rss = {}
    for T in (20000, 200000):
        path = os.path.join(WORK, "steps%d.safetensors" % T)
        write_long_x(path, T, 20, rng)
        out = os.path.join(WORK, "steps%d.out.safetensors" % T)
        rc, err, rss[T] = run(nobias, path, out, "--chunk-steps", "1000")
        check(rc == 0 and os.path.getsize(out) > T * 65 * 4,
              "T = %d in chunks of 1000: peak RSS %.1f MiB" % (T, rss[T]))
        os.remove(path)
        os.remove(out)
    check(rss[200000] - rss[20000] < 8,
          "peak RSS grows by %.1f MiB from T = 20,000 to 200,000 (limit 8)"
          % (rss[200000] - rss[20000]))

    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
