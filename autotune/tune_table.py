#!/usr/bin/python3
"""Prints the Markdown table of docs/TUNING.md from `amq tune --json` outputs:
per problem, the tuned kernel, the hand defaults and each autoscheduler's best
run, all timed in one process, and the speed-ups.

    /usr/bin/python3 autotune/tune_table.py [--limits LIMITS.json] docs/data/tune_bgemv_*.json
    /usr/bin/python3 autotune/tune_table.py --layouts schedules/records/<cpu-id>.jsonl
    /usr/bin/python3 autotune/tune_table.py --variants docs/data/<cpu-id>/tune_isa/*.json

With --limits (the JSON of `amq_bench_limits --benchmark_format=json`, measured
on the same CPU): a column with each problem's floor on this CPU, the larger of
its ALU time (XOR+popcount+add groups of 512 bits at the measured peak) and its
memory time (the weight bytes at the read bandwidth measured for that size), and
the tuned time as a multiple of it.

With --layouts: the best autoscheduler run per problem and data layout from a
records file (each run in its own process, with the defaults' time from that
process).

With --variants (`amq tune --isa ... --json` outputs): per problem and kernel
variant, the tuned kernel against that variant's hand defaults, both timed in
one process, and the tuned knobs.
"""
import collections
import json
import sys

SCHEDULERS = ("Mullapudi2016", "Adams2019", "Li2018")
# The hand-written AVX-512 intrinsics kernel, us, from
# ../shared/reference/cpu-limits.md (measured by others, not in this run), on
# the one CPU it was measured on; other CPUs get no such column.
HAND_WRITTEN_CPU = "amd-epyc-f26m2"
HAND_WRITTEN = {("1024x1024", "W2A2"): (2.0, 2.6), ("1024x1024", "W3A3"): (4.3, 4.7),
                ("4096x1024", "W2A2"): (9.7, 11.3), ("4096x1024", "W3A3"): (18.8, 21.1),
                ("4096x2048", "W2A2"): (21.9, 23.0), ("4096x2048", "W3A3"): (36.5, 37.5)}


def bits_name(bits):
    """amq's spelling of a bit pair, W2A2, also from the "2x2" of older JSON."""
    return bits.upper() if bits.upper().startswith("W") else "W" + bits.replace("x", "A")


def us(v):
    return "failed" if v is None else f"{v:.2f}"


def read_limits(path):
    """(groups of 512 bits per us, [(bytes, bytes per us)] by size) from amq_bench_limits."""
    with open(path, encoding="utf-8") as f:
        runs = json.load(f)["benchmarks"]
    # Medians when the run had repetitions, else the plain runs.
    runs = [b for b in runs if b.get("aggregate_name", "median") == "median"]
    groups = [b["groups_per_s"] for b in runs
              if b["name"].startswith("BM_xor_popcnt_add/lanes:8")]
    stream = sorted((int(b["name"].split("KiB:")[1].split("_")[0]) * 1024, b["bytes_per_second"])
                    for b in runs if b["name"].startswith("BM_stream_read/"))
    if not groups or not stream:
        sys.exit(f"{path}: no BM_xor_popcnt_add/lanes:8 or BM_stream_read results")
    return groups[0] * 1e-6, [(n, r * 1e-6) for n, r in stream]


def floor_us(j, limits):
    """The problem's floor on the measured CPU, us, and what sets it."""
    groups_per_us, stream = limits
    words = (j["cols"] + 63) // 64
    groups = (j["rows"] + 7) // 8 * words * j["k_w"] * j["k_a"] * j.get("batch", 1)
    weight_bytes = j["rows"] * words * 8 * j["k_w"]
    # The bandwidth measured at the smallest block at least as large as the weights.
    rate = next((r for n, r in stream if n >= weight_bytes), stream[-1][1])
    alu, mem = groups / groups_per_us, weight_bytes / rate
    return (alu, "ALU") if alu >= mem else (mem, "memory")


def main(paths, limits=None):
    tunes = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tunes.append(json.load(f))
    hand_cpu = all((j.get("cpu") or {}).get("id") == HAND_WRITTEN_CPU for j in tunes)
    extra = (["floor us on this CPU (tuned / floor)"] if limits else []) + (
        ["hand-written kernel us (tuned / its midpoint)"] if hand_cpu else [])
    print("| shape | bits | tuned us | tuned knobs | hand default us | "
          + " | ".join(f"{s} us" for s in SCHEDULERS)
          + " | vs best autoscheduler | vs default | " + "".join(f"{e} | " for e in extra) + "search |")
    print("| --- | --- | ---: | --- | ---: | " + " | ".join("---:" for _ in SCHEDULERS)
          + " | ---: | ---: | " + "---: | " * len(extra) + "--- |")
    for j in tunes:
        k = j["tuned_knobs"]
        knobs = " ".join(f"{n}={k[n]}" for n in sorted(k) if n != "parallel_tiles" or j["threads"] > 1)
        if j.get("kept_default"):
            knobs += " (defaults kept)"
        auto = j.get("autoschedulers") or {}
        cells = [us((auto.get(s) or {}).get("us")) for s in SCHEDULERS]
        search = f"{j['trials']} trials, {j['search_seconds']:.0f} s, {j['search_end']}"
        extra = []
        if limits:
            floor, bound = floor_us(j, limits)
            extra.append(f"{floor:.2f} ({bound}; {j['tuned_us'] / floor:.2f})")
        if hand_cpu:
            hand = HAND_WRITTEN.get((j["shape"], bits_name(j["bits"])))
            extra.append(f"{hand[0]}-{hand[1]} ({2 * j['tuned_us'] / (hand[0] + hand[1]):.2f})"
                         if hand else "-")
        print(f"| {j['shape']} | {bits_name(j['bits'])} | **{j['tuned_us']:.2f}** | {knobs} | "
              f"{j['default_us']:.2f} | " + " | ".join(cells)
              + f" | {j['speedup_vs_best_autoscheduler']:.2f}x ({j['best_autoscheduler']}) | "
              f"{j['speedup_vs_default']:.2f}x | " + "".join(f"{e} | " for e in extra) + f"{search} |")


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
            key = (r["shape"], bits_name(r["bits"]))
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
        print(f"| {shape} | {bits} | " + " | ".join(cells) + " |")


def variants(paths):
    runs = collections.defaultdict(dict)
    order = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        runs[(j["shape"], bits_name(j["bits"]))][j["isa"]] = j
        if j["isa"] not in order:
            order.append(j["isa"])
    print("| shape | bits | " + " | ".join(f"{isa}: tuned us / defaults us (speed-up), knobs"
                                          for isa in order) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in order) + " |")
    for (shape, bits), by_isa in runs.items():
        cells = []
        for isa in order:
            j = by_isa.get(isa)
            if j is None:
                cells.append("-")
                continue
            k = j["tuned_knobs"]
            knobs = " ".join(f"{n}={k[n]}" for n in sorted(k)
                             if n != "parallel_tiles" or j["threads"] > 1)
            if j.get("kept_default") or k == j["default_knobs"]:
                knobs = "defaults kept"
            cells.append(f"{j['tuned_us']:.2f} / {j['default_us']:.2f} "
                         f"({j['speedup_vs_default']:.2f}x), {knobs}")
        print(f"| {shape} | {bits} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--layouts":
        layouts(sys.argv[2])
    elif sys.argv[1] == "--variants":
        variants(sys.argv[2:])
    elif sys.argv[1] == "--limits":
        main(sys.argv[3:], read_limits(sys.argv[2]))
    else:
        main(sys.argv[1:])
