#!/usr/bin/env python3
"""Turns `amq bench gemv --all --json` outputs into the tables of docs/PERFORMANCE.md.

usage: gemv_table.py ONE_THREAD.json [TWO_THREADS.json]

The float kernel's column (f32_halide_us) is in the JSON but not in these
tables: docs/PERFORMANCE.md compares it with sgemv in its own section.
"""
import json
import sys


def main():
    t1 = json.load(open(sys.argv[1]))
    t2 = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
    print("| shape | bits | amq us | bgemv only us | quantize_act us | OpenBLAS sgemv us "
          "| amq vs sgemv | bgemv only vs sgemv | weights |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in t1:
        print(f"| {r['shape']} | W{r['k_w']}A{r['k_a']} | {r['amq_us']:.2f} | "
              f"{r['amq_gemv_only_us']:.2f} | {r['quantize_act_us']:.2f} | {r['sgemv_us']:.1f} | "
              f"{r['speedup_vs_sgemv']:.1f}x | "
              f"{r['speedup_gemv_only_vs_sgemv']:.1f}x | {r['compression']:.1f}x smaller |")
    if t2:
        print()
        print("| shape | bits | bgemv 1 thread us | bgemv 2 threads us | 2 vs 1 thread "
              "| amq 2 threads vs sgemv 2 threads |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for a, b in zip(t1, t2):
            assert a["shape"] == b["shape"] and a["bits"] == b["bits"]
            print(f"| {a['shape']} | W{a['k_w']}A{a['k_a']} | {a['amq_gemv_only_us']:.2f} | "
                  f"{b['amq_gemv_only_us']:.2f} | "
                  f"{a['amq_gemv_only_us'] / b['amq_gemv_only_us']:.2f}x | "
                  f"{b['speedup_vs_sgemv']:.1f}x |")


if __name__ == "__main__":
    main()
