#!/usr/bin/python3
"""Test of train_qat.py against the amq CLI on a small language model (seconds):

* with no training step, the .amq it writes holds the same planes (and scales to
  float rounding) as `amq quantize` of the same float model, for several bit widths,
  inits, and with the embedding and decoder float or quantized;
* after 0 and a few QAT steps, `amq eval` of the written .amq gives the script's
  own perplexity within 0.5% (and quantization changes the perplexity by more
  than that, so the check can fail), and so does `train_qat.py --eval-amq` of the
  file;
* bad arguments are refused with a message naming them.

* with `per-matrix`: bits per matrix and ternary activations (--bits-for), the
  same two checks (exit 77, skipped, when the amq binary has no --bits-for).

Usage: test_qat.py AMQ_BINARY WORK_DIR [per-matrix]
"""

import contextlib
import io
import json
import os
import random
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_qat  # noqa: E402
from export_torch import export_rnn, load_safetensors  # noqa: E402
from ptb import LanguageModel, batchify, build_vocab, encode, read_words  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def write_corpus(work):
    """A small text from a random Markov chain over 45 words: train and test files."""
    rng = random.Random(7)
    words = [f"w{i}" for i in range(45)]
    nxt = {w: rng.sample(words, 5) for w in words}

    def text(lines):
        out = []
        for _ in range(lines):
            w, line = rng.choice(words), []
            for _ in range(rng.randint(4, 12)):
                line.append(w)
                w = rng.choice(nxt[w])
            out.append(" ".join(line))
        return "\n".join(out) + "\n"

    paths = {}
    for name, lines in (("train", 300), ("test", 60)):
        paths[name] = os.path.join(work, f"{name}.txt")
        with open(paths[name], "w") as f:
            f.write(text(lines))
    # A test word outside the training vocabulary maps to <unk> in both evaluations.
    with open(paths["test"], "a") as f:
        f.write("w1 unseenword w2\n")
    return paths


def float_model(work, paths, emb=40, steps=60):
    """A tied LSTM LM (40 units: not a multiple of 64) trained for a few float steps."""
    torch.manual_seed(3)
    words = read_words(paths["train"])
    vocab = build_vocab(words)
    model = LanguageModel(len(vocab), emb, emb, dropout=0.0, tied=True)
    data = batchify(encode(words, vocab), 8)
    opt = torch.optim.SGD(model.parameters(), lr=5)
    state = None
    for i in range(steps):
        j = (i * 20) % (data.size(0) - 21)
        logits, state = model(data[j:j + 20])
        loss = torch.nn.functional.cross_entropy(logits.view(-1, len(vocab)), data[j + 1:j + 21].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
    path = os.path.join(work, "lm.safetensors")
    export_rnn(path, model.rnn, model.embedding, model.decoder, vocab, tied=True)
    return path


def run_qat(args):
    """train_qat.main in this process (no new torch start); its stdout swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return train_qat.main([str(a) for a in args])


def amq(binary, *args):
    r = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"amq {' '.join(map(str, args))} failed: {r.stderr}")
    return r.stdout


def same_as_amq_quantize(binary, work, paths, lm):
    for bits, init, parts in (("1x1", "refined", "quantized"), ("2x2", "refined", "quantized"),
                              ("3x2", "greedy", "float"), ("4x3", "refined", "quantized"),
                              ("2x4", "greedy", "quantized")):
        w, a = bits.split("x")
        ours, theirs = os.path.join(work, f"qat0_{bits}.amq"), os.path.join(work, f"ptq_{bits}.amq")
        run_qat(["--in", lm, "-o", ours, "--steps", 0, "--no-eval", "--wbits", w, "--abits", a,
                 "--init", init, "--lm-parts", parts, "--train", paths["train"], "--test", paths["test"]])
        amq(binary, "quantize", "--in", lm, "-o", theirs, "--wbits", w, "--abits", a, "--init", init,
            "--lm-parts", parts, "--threads", 1)
        t1, m1 = load_safetensors(ours)
        t2, m2 = load_safetensors(theirs)
        label = f"W{w}A{a} init {init} lm-parts {parts}"
        check(sorted(t1) == sorted(t2), f"{label}: same tensors ({sorted(t1)})")
        for key in ("format", "arch", "layers", "input_size", "hidden_size", "vocab_size", "tied", "vocab",
                    "k_w", "k_a", "method", "iters", "act_method", "act_iters", "alternating_init"):
            check(m1.get(key) == m2.get(key), f"{label}: metadata {key} = {m2.get(key)!r}"[:100])
        for name in sorted(set(t1) & set(t2)):
            if name.endswith(".planes"):
                check(np.array_equal(t1[name], t2[name]), f"{label}: {name} identical")
            elif name.endswith(".alpha"):
                err = np.max(np.abs(t1[name] - t2[name]) / np.maximum(np.abs(t2[name]), 1e-30))
                check(err <= 1e-6, f"{label}: {name} equal to float rounding (max rel. diff {err:.2g})")
            else:
                check(np.array_equal(t1[name], t2[name]), f"{label}: {name} copied")


def eval_agrees(binary, work, paths, lm):
    float_ppl = json.loads(amq(binary, "eval", lm, "--text", paths["test"], "--json"))["perplexity"]
    for bits, extra in (("2x2", ["--lm-parts", "quantized"]), ("1x1", []),
                        ("3x2", ["--lm-parts", "quantized", "--init", "greedy", "--act-iters", "1"])):
        w, a = bits.split("x")
        for steps in (0, 15):
            label = f"W{w}A{a} {' '.join(extra)}, {steps} steps"
            out, fig = os.path.join(work, f"qat{steps}_{bits}.amq"), os.path.join(work, f"qat{steps}_{bits}.json")
            run_qat(["--in", lm, "-o", out, "--steps", steps, "--wbits", w, "--abits", a, "--batch", 8,
                     "--bptt", 20, "--lr", 1, "--train", paths["train"], "--test", paths["test"],
                     "--json", fig, *extra])
            ours = json.load(open(fig))["test_perplexity"]
            theirs = json.loads(amq(binary, "eval", out, "--text", paths["test"], "--json"))["perplexity"]
            rel = abs(ours - theirs) / theirs
            check(rel < 0.005, f"{label}: amq eval {theirs:.4f} vs train_qat.py {ours:.4f} "
                               f"({100 * rel:.4f}% apart, limit 0.5%)")
            reread = os.path.join(work, f"reread{steps}_{bits}.json")
            run_qat(["--eval-amq", out, "--test", paths["test"], "--json", reread])
            again = json.load(open(reread))["test_perplexity"]
            check(abs(again - theirs) / theirs < 0.005,
                  f"{label}: train_qat.py --eval-amq of the file {again:.4f} vs amq eval {theirs:.4f}")
            if steps == 0:  # the agreement means something: quantizing moves the figure more
                check(abs(theirs - float_ppl) / float_ppl > 0.01,
                      f"{label}: quantized {theirs:.3f} differs from float {float_ppl:.3f} by more than 1%")


def refusals(paths, lm, work):
    out = os.path.join(work, "bad.amq")
    for args, needle in ((["--bits-for", "decoder.bias=2x2"], "decoder.bias"),
                         (["--bits-for", "weight_hh_l0=5x2"], "outside 1..4"),
                         (["--bits-for", "weight_hh_l0=2"], "WxA"),
                         (["--bits-for", "weight_hh_l0=2x2:uniform"], "uniform")):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                run_qat(["--in", lm, "-o", out, "--steps", 0, "--no-eval", "--train", paths["train"],
                         "--test", paths["test"], *args])
            check(False, f"{args} refused")
        except SystemExit as e:
            check(needle in str(e.code) + err.getvalue(), f"{args} refused naming '{needle}': {e.code}")


PER_MATRIX = ["--bits-for", "embedding.weight=4x3", "--bits-for", "weight_hh_l0=2x2:ternary",
              "--bits-for", "weight_ih_l0=3x1:greedy"]


def per_matrix(binary, work, paths, lm):
    """Bits per matrix and ternary activations (needs an amq with --bits-for): the
    0-step file equals amq quantize --bits-for's; amq eval agrees after a few steps."""
    ours, theirs = os.path.join(work, "pm0.amq"), os.path.join(work, "pm_ref.amq")
    common = ["--in", lm, "--train", paths["train"], "--test", paths["test"], *PER_MATRIX]
    run_qat([*common, "-o", ours, "--steps", 0, "--no-eval"])
    amq(binary, "quantize", "--in", lm, "-o", theirs, "--threads", 1, *PER_MATRIX)
    t1, m1 = load_safetensors(ours)
    t2, m2 = load_safetensors(theirs)
    check(json.loads(m1.get("matrix_bits", "{}")) == json.loads(m2.get("matrix_bits", "{}")),
          f"per-matrix: matrix_bits {m1.get('matrix_bits')} == amq quantize's {m2.get('matrix_bits')}")
    check(sorted(t1) == sorted(t2) and all(np.array_equal(t1[n], t2[n]) for n in t2),
          "per-matrix: every tensor identical to amq quantize --bits-for's")
    out, fig = os.path.join(work, "pm.amq"), os.path.join(work, "pm.json")
    run_qat([*common, "-o", out, "--steps", 10, "--batch", 8, "--lr", 1, "--json", fig])
    ours_ppl = json.load(open(fig))["test_perplexity"]
    theirs_ppl = json.loads(amq(binary, "eval", out, "--text", paths["test"], "--json"))["perplexity"]
    check(abs(ours_ppl - theirs_ppl) / theirs_ppl < 0.005,
          f"per-matrix, 10 steps: amq eval {theirs_ppl:.4f} vs train_qat.py {ours_ppl:.4f}")


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    paths = write_corpus(work)
    lm = float_model(work, paths)
    if sys.argv[3:] == ["per-matrix"]:
        if "--bits-for" not in subprocess.run([binary, "quantize", "--help"], capture_output=True,
                                              text=True).stdout:
            print("SKIP: this amq has no quantize --bits-for (bits per matrix)")
            return 77
        per_matrix(binary, work, paths, lm)
    else:
        same_as_amq_quantize(binary, work, paths, lm)
        eval_agrees(binary, work, paths, lm)
        refusals(paths, lm, work)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
