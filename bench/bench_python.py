#!/usr/bin/python3
"""amq's Python module against PyTorch, in one process: time per step of an LSTM
run over a sequence by

  torch float       nn.LSTM
  torch int8 <eng>  torch.ao.quantization.quantize_dynamic(nn.LSTM, qint8) with
                    torch.backends.quantized.engine = eng, for each of onednn and
                    qnnpack that this torch supports
  amq W<w>A<a>      amq.torch.from_module(nn.LSTM, wbits, abits): the drop-in
                    module's forward() (what a PyTorch user calls)
  amq session       the same model through Model.session(B).run() (numpy in and out)

on the same input, batch 1 and 8, H = 256, 512, 1024 (input width H, one layer),
and a 2-layer bidirectional LSTM with proj_size = H/4 (speech models' LSTMP).
torch.set_num_threads(1) and amq.set_num_threads(1). Each figure is the median
over --rounds rounds; in each round every candidate runs once (each call repeated
to last at least --min-ms), in a new random order (fixed seed), so that drift of
the machine's load touches every candidate alike. Prints a Markdown table and,
with --json FILE, writes every figure.

torch 1.13's dynamic int8 LSTM drops proj_size: with qnnpack it runs the network
without its projection (output 2H wide, not 2P), with onednn it fails. The table
shows that int8 figure, labelled, as the only int8 time torch has for such a
layer; it computes more than the projected network (W_hh is 4H x H, not 4H x P).

    PYTHONPATH=build/python /usr/bin/python3 bench/bench_python.py --json bench.json
    PYTHONPATH=build/python /usr/bin/python3 bench/bench_python.py --quick
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings

# torch's qnnpack logs a warning per quantized product (through c10 and glog):
# quiet it. Both read the environment when torch's libraries load, so the script
# starts again with it.
QUIET = {"TORCH_CPP_LOG_LEVEL": "ERROR", "GLOG_minloglevel": "2"}
if any(k not in os.environ for k in QUIET):
    os.execve(sys.executable, [sys.executable] + sys.argv, {**QUIET, **os.environ})

import torch  # noqa: E402

import amq  # noqa: E402
import amq.torch  # noqa: E402


class Wrapper(torch.nn.Module):
    """quantize_dynamic swaps children only: the LSTM goes inside a module."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)


def timed(fn, min_seconds):
    """Seconds per call of fn, over enough calls to last min_seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / n


def int8_module(rnn, engine):
    """The dynamic int8 LSTM of `engine`, and a note when it is not rnn's network."""
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(Wrapper(rnn), {torch.nn.LSTM}, dtype=torch.qint8)
    note = None
    if rnn.proj_size:
        note = ("runs the network without its projection: torch's dynamic int8 LSTM drops "
                "proj_size (its output is 2H wide, not 2P)")
    return q, note


def candidates(rnn, x, bits):
    """name -> (callable, note) for one configuration."""
    out = {"torch float": (lambda: rnn(x), None)}
    for engine in ("onednn", "qnnpack"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        try:
            q, note = int8_module(rnn, engine)
            torch.backends.quantized.engine = engine
            q(x)  # fails here when the engine cannot run it

            def call(q=q, engine=engine):
                torch.backends.quantized.engine = engine
                return q(x)
            out[f"torch int8 {engine}"] = (call, note)
        except RuntimeError as e:
            out[f"torch int8 {engine}"] = (None, f"fails: {str(e).splitlines()[0]}")
    w, a = bits
    fast = amq.torch.from_module(rnn, wbits=w, abits=a)
    session = fast.model.session(x.shape[1])
    xn = x.numpy()

    def session_run():
        session.reset()
        return session.run(xn)
    out[f"amq W{w}A{a}"] = (lambda: fast(x), None)
    out[f"amq W{w}A{a} session"] = (session_run, None)
    return out


def measure(config, args, rng):
    H, B, layers, bidir, proj = (config[k] for k in ("hidden", "batch", "layers",
                                                     "bidirectional", "proj_size"))
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(H, H, layers, bidirectional=bidir, proj_size=proj).eval()
    x = torch.randn(args.steps, B, H)
    with torch.no_grad():
        cands = candidates(rnn, x, args.bits)
        runnable = [n for n, (fn, _) in cands.items() if fn is not None]
        for n in runnable:  # warm up: first calls allocate, pack weights, fault pages in
            cands[n][0]()
        samples = {n: [] for n in runnable}
        for _ in range(args.rounds):
            order = runnable[:]
            rng.shuffle(order)
            for n in order:
                samples[n].append(timed(cands[n][0], args.min_ms / 1000) / args.steps * 1e6)
    result = dict(config)
    result["us_per_step"] = {n: statistics.median(s) for n, s in samples.items()}
    result["samples_us"] = samples
    result["notes"] = {n: note for n, (_, note) in cands.items() if note}
    amq_name = f"amq W{args.bits[0]}A{args.bits[1]}"
    t = result["us_per_step"]
    result["speedup"] = {n: t[n] / t[amq_name] for n in t if not n.startswith("amq")}
    return result


def cpu_description(amq_cli):
    info = {"machine": platform.machine(), "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["model_name"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if amq_cli and os.path.exists(amq_cli):
        p = subprocess.run([amq_cli, "info", "--json"], capture_output=True, text=True)
        if p.returncode == 0:
            info["amq_info"] = json.loads(p.stdout)["cpu"]
    return info


def table(results, bits):
    names = []
    for r in results:
        names += [n for n in r["us_per_step"] if n not in names]
    amq_name = f"amq W{bits[0]}A{bits[1]}"
    def network(r):
        net = f"LSTM H={r['hidden']}, {r['layers']} layer{'s' if r['layers'] > 1 else ''}"
        if r["bidirectional"]:
            net += f", bidirectional, proj_size={r['proj_size']}"
        return net

    lines = ["| network | B | " + " | ".join(f"{n} us" for n in names) +
             " | amq vs torch float | amq vs best torch int8 |",
             "| --- | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |"]
    for r in results:
        net = network(r)
        t = r["us_per_step"]
        cells = [f"{t[n]:.1f}" if n in t else "-" for n in names]
        int8 = [n for n in t if n.startswith("torch int8")]
        best = min(int8, key=lambda n: t[n]) if int8 else None
        vs_int8 = f"{t[best] / t[amq_name]:.1f}x ({best[11:]})" if best else "-"
        lines.append(f"| {net} | {r['batch']} | " + " | ".join(cells) +
                     f" | {t['torch float'] / t[amq_name]:.1f}x | {vs_int8} |")
    notes = {}  # (candidate, note) -> the networks it applies to
    for r in results:
        for n, note in r["notes"].items():
            nets = notes.setdefault((n, note), [])
            if network(r) not in nets:
                nets.append(network(r))
    for (n, note), nets in notes.items():
        lines.append(f"\n{n} on {'; '.join(nets)}: {note}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="256,512,1024", help="hidden sizes (comma-separated)")
    p.add_argument("--batch", default="1,8", help="batch sizes (comma-separated)")
    p.add_argument("--steps", type=int, default=64, help="sequence length T (default 64)")
    p.add_argument("--rounds", type=int, default=7, help="rounds; the median is reported")
    p.add_argument("--min-ms", type=float, default=30, help="least time of one sample (ms)")
    p.add_argument("--bits", default="2x2", help="amq's WxA (default 2x2)")
    p.add_argument("--no-bidirectional", action="store_true",
                   help="leave out the 2-layer bidirectional LSTM with proj_size")
    p.add_argument("--quick", action="store_true",
                   help="H = 256 and 1024 at batch 1, 3 rounds, 10 ms samples (a short demo)")
    p.add_argument("--amq", default=None, help="the amq tool, for the CPU's id in the JSON")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = p.parse_args()
    if args.quick:
        args.hidden, args.batch, args.rounds, args.min_ms = "256,1024", "1", 3, 10
    args.bits = tuple(int(b) for b in args.bits.lower().lstrip("w").replace("a", "x").split("x"))
    hidden = [int(h) for h in args.hidden.split(",")]
    batches = [int(b) for b in args.batch.split(",")]

    torch.set_num_threads(1)
    amq.set_num_threads(1)
    rng = random.Random(1)
    configs = [{"hidden": h, "batch": b, "layers": 1, "bidirectional": False, "proj_size": 0}
               for h in hidden for b in batches]
    if not args.no_bidirectional:
        configs += [{"hidden": h, "batch": b, "layers": 2, "bidirectional": True,
                     "proj_size": h // 4} for h in hidden for b in batches]
    results = []
    for c in configs:
        r = measure(c, args, rng)
        results.append(r)
        print(f"# {c}: " + ", ".join(f"{n} {t:.1f} us" for n, t in r["us_per_step"].items()),
              file=sys.stderr, flush=True)
    print(table(results, args.bits))
    if args.json:
        amq_cli = args.amq or os.path.join(os.path.dirname(os.path.abspath(amq.__file__)),
                                           "..", "..", "tools", "amq")
        doc = {"command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
               "cpu": cpu_description(amq_cli), "torch": torch.__version__,
               "quantized_engines": torch.backends.quantized.supported_engines,
               "amq_isa": amq.active_isa(), "threads": 1, "steps": args.steps,
               "rounds": args.rounds, "min_ms": args.min_ms, "bits": list(args.bits),
               "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
