#!/usr/bin/python3
"""Plots an amq tune records file: each search trial's time and the best so far
against the trial number, relative to the hand defaults timed alongside, with
the best run of each Halide autoscheduler as a line.

    /usr/bin/python3 autotune/plot_records.py schedules/records/<cpu-id>.jsonl \
        --pipeline bgemv --shape 4096x1024 --bits W2A2 -o tuning.png

Lines that are not records are skipped with a warning, as amq tune does.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def bits_name(bits):
    """amq's spelling of a bit pair, W2A2, also from the "2x2" of older records."""
    return bits.upper() if bits.upper().startswith("W") else "W" + bits.replace("x", "A")


def load(path, args):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"warning: records {path} line {n} skipped: {e}", file=sys.stderr)
                continue
            if "generated_by" in r:
                continue
            if r.get("format_version") != 1:
                print(f"warning: records {path} line {n} skipped: format_version "
                      f"{r.get('format_version')}", file=sys.stderr)
                continue
            if (r.get("pipeline"), r.get("shape"), bits_name(r.get("bits", "")), r.get("threads"),
                    r.get("isa", "avx512")) != (args.pipeline, args.shape, bits_name(args.bits),
                                                args.threads, args.isa):
                continue
            if args.cpu and r["cpu"]["id"] != args.cpu:
                continue
            rows.append(r)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("records")
    p.add_argument("--pipeline", default="bgemv")
    p.add_argument("--shape", required=True, help="ROWSxCOLS, e.g. 4096x1024")
    p.add_argument("--bits", required=True, help="W<w>A<a>, e.g. W2A2 (or 2x2)")
    p.add_argument("--isa", default="avx512",
                   help="kernel variant (records without one are avx512's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpu", help="only records of this CPU id")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    args = p.parse_args()

    rows = load(args.records, args)
    trials = [r for r in rows if r["source"] == "search"]
    if not trials:
        sys.exit(f"{args.records}: no search records for {args.pipeline} {args.shape} "
                 f"{bits_name(args.bits)} with {args.threads} thread(s)")
    by_rung, fail_x, best_x, best_y = {}, [], [], []
    best = None
    for i, r in enumerate(trials, 1):
        if r["kind"] == "ok":
            by_rung.setdefault(r["rung"], ([], []))
            by_rung[r["rung"]][0].append(i)
            by_rung[r["rung"]][1].append(r["ratio"])
            best = r["ratio"] if best is None else min(best, r["ratio"])
        else:
            fail_x.append(i)
        if best is not None:
            best_x.append(i)
            best_y.append(best)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for rung, (xs, ys) in sorted(by_rung.items()):
        what = "screening" if rung == 0 else "full timing"
        ax.scatter(xs, ys, s=14, alpha=0.6, marker="os^"[min(rung, 2)],
                   label=f"trial, rung {rung} ({what})")
    ax.step(best_x, best_y, where="post", color="tab:blue", label="lowest so far (rung 0 is noisy; the winner is picked at rung 2)")
    top = max([y for _, ys in by_rung.values() for y in ys] + [1.0])
    if fail_x:
        ax.scatter(fail_x, [top * 1.2] * len(fail_x), marker="x", color="tab:red",
                   label="failed (kind in the records)")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="hand defaults")
    colors = iter(["tab:orange", "tab:green", "tab:purple", "tab:brown"])
    by_scheduler = {}
    for r in rows:
        if r["source"] == "autoscheduler" and r["kind"] == "ok":
            name = r["autoscheduler"]
            by_scheduler[name] = min(by_scheduler.get(name, float("inf")), r["ratio"])
    for name, ratio in sorted(by_scheduler.items()):
        ax.axhline(ratio, color=next(colors), linestyle=":", linewidth=1.5,
                   label=f"{name} (best run)")
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_yticks([t for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
                   if lo <= t <= hi])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("trial")
    ax.set_ylabel("time / hand defaults' time (same process)")
    cpu = trials[-1]["cpu"]["name"]
    ax.set_title(f"amq tune {args.pipeline} {args.shape} {bits_name(args.bits)}, "
                 f"{args.threads} thread(s), {cpu}")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output} ({len(trials)} trials)")


if __name__ == "__main__":
    main()
