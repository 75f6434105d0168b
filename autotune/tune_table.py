#!/usr/bin/python3
"""Prints the Markdown table of docs/TUNING.md from `amq tune --json` outputs:
per problem, the tuned kernel, the hand defaults and each autoscheduler's best
run, all timed in one process, and the speed-ups.

    /usr/bin/python3 autotune/tune_table.py docs/data/tune_bgemv_*.json
    /usr/bin/python3 autotune/tune_table.py --layouts schedules/records/<cpu-id>.jsonl

With --layouts: the best autoscheduler run per problem and data layout from a
records file (each run in its own process, with the defaults' time from that
process).
"""
import collections
import json
import sys

SCHEDULERS = ("Mullapudi2016", "Adams2019", "Li2018")
# The hand-written AVX-512 intrinsics kernel on this machine, us, from
# ../shared/reference/cpu-limits.md (measured by others, not in this run).
HAND_WRITTEN = {("1024x1024", "2x2"): (2.0, 2.6), ("1024x1024", "3x3"): (4.3, 4.7),
                ("4096x1024", "2x2"): (9.7, 11.3), ("4096x1024", "3x3"): (18.8, 21.1),
                ("4096x2048", "2x2"): (21.9, 23.0), ("4096x2048", "3x3"): (36.5, 37.5)}


def us(v):
    return "failed" if v is None else f"{v:.2f}"


def main(paths):
    print("| shape | bits | tuned us | tuned knobs | hand default us | "
          + " | ".join(f"{s} us" for s in SCHEDULERS)
          + " | vs best autoscheduler | vs default | hand-written kernel us (tuned / its midpoint) | search |")
    print("| --- | --- | ---: | --- | ---: | " + " | ".join("---:" for _ in SCHEDULERS)
          + " | ---: | ---: | ---: | --- |")
    for path in paths:
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        k = j["tuned_knobs"]
        knobs = " ".join(f"{n}={k[n]}" for n in sorted(k) if n != "parallel_tiles" or j["threads"] > 1)
        if j.get("kept_default"):
            knobs += " (defaults kept)"
        auto = j.get("autoschedulers") or {}
        cells = [us((auto.get(s) or {}).get("us")) for s in SCHEDULERS]
        search = f"{j['trials']} trials, {j['search_seconds']:.0f} s, {j['search_end']}"
        hand = HAND_WRITTEN.get((j["shape"], j["bits"]))
        hand = f"{hand[0]}-{hand[1]} ({2 * j['tuned_us'] / (hand[0] + hand[1]):.2f})" if hand else "-"
        print(f"| {j['shape']} | W{j['bits'].replace('x', 'A')} | **{j['tuned_us']:.2f}** | {knobs} | "
              f"{j['default_us']:.2f} | " + " | ".join(cells)
              + f" | {j['speedup_vs_best_autoscheduler']:.2f}x ({j['best_autoscheduler']}) | "
              f"{j['speedup_vs_default']:.2f}x | {hand} | {search} |")


def layouts(records_path):
    best = collections.defaultdict(dict)
    with open(records_path, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # amq tune warns about such lines; a table does not need them
            if (r.get("source") != "autoscheduler" or r.get("kind") != "ok"
                    or r.get("pipeline") != "bgemv" or r.get("threads") != 1):
                continue
            lay = f"{r['knobs'].get('layout')}/{r['knobs'].get('tile')}"
            key = (r["shape"], r["bits"])
            if lay not in best[key] or r["median_us"] < best[key][lay]["median_us"]:
                best[key][lay] = r
    names = sorted({lay for v in best.values() for lay in v})
    print("| shape | bits | " + " | ".join(f"{n} us (x defaults)" for n in names) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in names) + " |")
    for (shape, bits), v in sorted(best.items()):
        cells = []
        for n in names:
            r = v.get(n)
            cells.append("-" if r is None else
                         f"{r['median_us']:.2f} ({r['median_us'] / r['baseline_us']:.1f}x, {r['autoscheduler']})")
        print(f"| {shape} | W{bits.replace('x', 'A')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--layouts":
        layouts(sys.argv[2])
    else:
        main(sys.argv[1:])
