#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_run_inputs.cpp (corpus/run_inputs/): inputs
files of `amq run` for the fuzzer's two models (input_size 3; a language model
with a vocabulary of 7), valid and malformed. Plain Python, no dependencies:
    python3 tests/fuzz/make_run_inputs_corpus.py
"""
import json
import math
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "run_inputs")
FORMATS = {"F32": "f", "F64": "d", "I64": "q", "I32": "i"}
SIZES = {"F32": 4, "F64": 8, "I64": 8, "I32": 4}


def container(tensors, metadata=None, header_extra=b""):
    """tensors: list of (name, dtype, shape, values)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        raw = struct.pack("<%d%s" % (len(values), FORMATS[dtype]), *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode() + header_extra
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def x(T, B, I=3, values=None, dtype="F32"):
    n = T * B * I
    v = values if values is not None else [((i * 37) % 17 - 8) / 4.0 for i in range(n)]
    return ("x", dtype, [T, B, I], v)


def tokens(T, B, values=None, dtype="I64"):
    v = values if values is not None else [(i * 5) % 7 for i in range(T * B)]
    return ("tokens", dtype, [T, B], v)


def main():
    os.makedirs(OUT, exist_ok=True)
    nan_at = [0.5] * 30
    nan_at[17] = math.nan
    inf_at = [0.5] * 30
    inf_at[4] = -math.inf
    files = {
        "x_valid": container([x(5, 2)]),
        "x_one_step": container([x(1, 1)]),
        "x_with_other_tensors": container(
            [x(4, 3), ("h", "F32", [4, 3, 4], [0.0] * 48)], {"format": "amq-io"}),
        "tokens_valid": container([tokens(4, 3)]),
        "tokens_long": container([tokens(20, 1)], {"note": "twenty steps"}),
        "x_nan": container([x(5, 2, values=nan_at)]),
        "x_inf": container([x(5, 2, values=inf_at)]),
        "tokens_out_of_range": container([tokens(3, 2, values=[0, 1, 2, 7, 3, 4])]),
        "tokens_negative": container([tokens(3, 2, values=[0, 1, -1, 2, 3, 4])]),
        "both_x_and_tokens": container([x(2, 1), tokens(2, 1)]),
        "neither": container([("y", "F32", [2, 1, 3], [0.0] * 6)]),
        "x_f64": container([x(2, 2, dtype="F64")]),
        "x_rank2": container([("x", "F32", [5, 6], [0.0] * 30)]),
        "x_wrong_width": container([x(2, 2, I=4)]),
        "x_zero_steps": container([x(0, 2)]),
        "tokens_i32": container([tokens(3, 2, dtype="I32")]),
        "tokens_rank3": container([("tokens", "I64", [2, 1, 1], [1, 2])]),
        # Initial states and lengths (the plain model: 1 layer, hidden 4, LSTM).
        "x_h0_c0_lengths": container([x(5, 2), ("h0", "F32", [1, 2, 4], [0.25] * 8),
                                      ("c0", "F32", [1, 2, 4], [-0.5] * 8),
                                      ("lengths", "I64", [2], [3, 5])]),
        "lengths_zero": container([x(5, 2), ("lengths", "I64", [2], [0, 5])]),
        "lengths_past_end": container([x(5, 2), ("lengths", "I64", [2], [6, 5])]),
        "h0_wrong_shape": container([x(5, 2), ("h0", "F32", [2, 2, 4], [0.0] * 16)]),
        "c0_nan": container([x(5, 2), ("c0", "F32", [1, 2, 4], [0.0] * 3 + [math.nan] + [0.0] * 4)]),
        # safetensors pads the header with spaces only.
        "x_nul_padding": container([x(5, 2)], header_extra=b"\0\0\0"),
        "x_tab_padding": container([x(5, 2)], header_extra=b"\t"),
        "empty": b"",
        "header_past_end": struct.pack("<Q", 1000) + b"{}",
        "bad_json": struct.pack("<Q", 8) + b'{"x" 12}',
    }
    valid = container([x(5, 2)])
    files["truncated"] = valid[:-7]
    for name, data in files.items():
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
