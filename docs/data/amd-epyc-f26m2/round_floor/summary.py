#!/usr/bin/env python3
"""The goal ratios of rounds.sh: per problem, each run's amq_vs_floor (the median
of the rounds' ratios) and, for comparison, its median time over its median floor;
then the medians over the runs. Usage: summary.py [dir]"""
import glob, json, os, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def load(pattern):
    out = []
    for f in sorted(glob.glob(os.path.join(d, pattern))):
        try:
            out.append(json.load(open(f)))
        except ValueError:
            pass
    return out


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(v):
    return "-" if v is None else "%.2f" % v


print("| problem | runs | run() us | run() floor us | run() / floor (per round) | run() / floor (medians) | step() us | step() / floor (per round) | runs' run() / floor |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for a in ("lstm", "gru"):
    for h in ("128", "256", "512", "1024", "1024-b8"):
        runs = load("rnn-%s-%s-r*.json" % (a, h))
        if not runs:
            continue
        rr = [r["amq_vs_floor"] for r in runs]
        rm = [r["amq_us_per_step"] / r["floor_us_per_step"] for r in runs]
        print("| %s %s | %d | %.3f | %.3f | %s | %s | %.3f | %s | %s |" % (
            a.upper(), h.replace("-b8", ", batch 8"), len(runs),
            med([r["amq_us_per_step"] for r in runs]), med([r["floor_us_per_step"] for r in runs]),
            fmt(med(rr)), fmt(med(rm)), med([r["amq_step_us_per_step"] for r in runs]),
            fmt(med([r["step_vs_floor"] for r in runs])), ", ".join(fmt(x) for x in rr)))
print()
print("| shape | bits | runs | amq us | floor us | amq / floor (per round) | amq / floor (medians) | runs' amq / floor |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for s in ("1024x1024", "4096x1024", "4096x2048", "16384x4096"):
    for b in ("W2A2", "W3A3"):
        runs = load("gemv-%s-%s-r*.json" % (s, b))
        runs = [r if "amq_us" in r else r["results"][0] for r in runs] if runs else runs
        if not runs:
            continue
        rr = [r["amq_vs_floor"] for r in runs]
        print("| %s | %s | %d | %.2f | %.2f | %s | %s | %s |" % (
            s, b, len(runs), med([r["amq_us"] for r in runs]), med([r["floor_us"] for r in runs]),
            fmt(med(rr)), fmt(med([r["amq_us"] / r["floor_us"] for r in runs])),
            ", ".join(fmt(x) for x in rr)))
