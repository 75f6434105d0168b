#!/usr/bin/env python3
"""check_generated_manifest.py GENERATED_MANIFEST SCHEDULES KERNEL_MANIFEST MODEL_INFO_JSON

Checks what `amq generate --model` wrote against the schedules file it was
generated with: every bgemv kernel specialized to a shape carries exactly the
knobs of that shape's winner in the schedules file's "variants", every bgemv
kernel for any shape the common knobs ("pipelines" over the manifest's
defaults) and, per lower ISA variant, the knobs its "isa" section sets apart
from those, and the specialized kernels are exactly the winners (tuned_us <
0.97 common_us, top ISA) of the model's bits and product shapes, and the fused
step kernels are those of the model's architecture, bits and cycles. MODEL_INFO_JSON
is `amq info MODEL --json`. Exits 1 naming the first difference.
"""
import json
import sys


def knob_set(manifest, pipeline, given):
    knobs = {k: spec["default"] for k, spec in manifest["pipelines"][pipeline]["knobs"].items()}
    knobs.update(given)
    return knobs


def product_shapes(info):
    gates = 4 if info["arch"] == "lstm" else 3
    h, shapes = info["hidden_size"], set()
    for layer in range(info["layers"]):
        shapes.add((gates * h, info["input_size"] if layer == 0 else h))
        shapes.add((gates * h, h))
    if any(t["name"] == "decoder.weight.planes" for t in info["tensors"]):
        shapes.add((info["vocab_size"], h))
    return shapes


def main():
    generated, schedules, manifest, info = (json.load(open(p)) for p in sys.argv[1:5])
    bits = info["bits"].upper()  # "W2A2", or "2x2"
    if "X" in bits:
        bits = "W%sA%s" % tuple(bits.split("X"))
    shapes = product_shapes(info)
    winners = {}
    for v in schedules.get("variants", []):
        if v["isa"] == "avx512" and v["tuned_us"] < 0.97 * v["common_us"]:
            winners[(v["bits"], tuple(v["shape"]))] = knob_set(manifest, v["pipeline"], v["knobs"])
    common = knob_set(manifest, "bgemv", schedules["pipelines"].get("bgemv", {}))
    # The knobs each lower ISA variant sets apart from the common ones (isa_knobs).
    common_isa = {}
    for isa, section in schedules.get("isa", {}).items():
        own = {k: v for k, v in section.get("pipelines", {}).get("bgemv", {}).items()
               if common.get(k) != v}
        if own:
            common_isa[isa] = own
    seen = set()
    for k in generated["kernels"]:
        if k["pipeline"] != "bgemv":
            continue
        if k["bits"] != bits:
            sys.exit("%s: bits %s, the model has %s" % (k["name"], k["bits"], bits))
        if k["shape"] == "any":
            want = common
        else:
            shape = tuple(k["shape"])
            if (bits, shape) not in winners:
                sys.exit("%s: no winning variant %s %s in the schedules file" % (k["name"], bits, shape))
            if shape not in shapes:
                sys.exit("%s: %s is not a product of the model (%s)" % (k["name"], shape, sorted(shapes)))
            want = winners[(bits, shape)]
            seen.add(shape)
        if k["knobs"] != want:
            sys.exit("%s: knobs %s, the schedules file has %s" % (k["name"], k["knobs"], want))
        if k["shape"] == "any" and (k.get("isa_knobs") or {}) != common_isa:
            sys.exit("%s: ISA variants' knobs %s, the schedules file has %s"
                     % (k["name"], k.get("isa_knobs"), common_isa))
        if k["target"] != generated["target"]:
            sys.exit("%s: target %s, generated for %s" % (k["name"], k["target"], generated["target"]))
    # The fused steps of the model's architecture (batch 1, batched and full) at
    # its bits and cycles, with their unchecked copies, where the kernel manifest
    # builds them; no other step kernel.
    iters = 0 if info["act_method"] == "greedy" else int(info["metadata"]["act_iters"])
    want_steps = set()
    for form in ("_step", "_step_batch", "_full_step"):
        step = info["arch"] + form
        spec = manifest["pipelines"][step]
        if info["proj_size"] != 0 or info["act_method"] == "ternary":
            continue
        for inst in spec["instances"]:
            f = inst["fixed"]
            if ("W%dA%d" % (f["k_w"], f["k_a"]), f["iters"]) == (bits, iters):
                want_steps.add(inst["name"])
                if spec.get("unchecked_copies"):
                    want_steps.add(inst["name"] + "_unchecked")
    got_steps = {k["name"] for k in generated["kernels"]
                 if k["pipeline"].endswith(("_step", "_step_batch"))}
    if got_steps != want_steps:
        sys.exit("fused step kernels %s, the model (%s %s, %d cycles) calls %s"
                 % (sorted(got_steps), info["arch"], bits, iters, sorted(want_steps)))
    missing = {s for (b, s) in winners if b == bits and s in shapes} - seen
    if missing:
        sys.exit("no specialized kernel for the model's tuned products %s" % sorted(missing))
    print("generated manifest: %d kernels; bgemv %s specialized to %s with the tuned knobs, "
          "common knobs elsewhere; fused steps %s"
          % (len(generated["kernels"]), bits, sorted(seen) or "no shape", sorted(got_steps)))


if __name__ == "__main__":
    main()
