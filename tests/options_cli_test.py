#!/usr/bin/python3
"""Every nn.LSTM / nn.GRU option through the command line, against PyTorch.

A 2-layer bidirectional LSTM with proj_size and a 2-layer bidirectional GRU (and a
unidirectional projected LSTM), batch 3, odd sizes (input 13, hidden 21, proj 11),
initial states h0 / c0 and sequences of different lengths (pack_padded_sequence,
enforce_sorted=False), are exported with python/export_torch.py; `amq run` on the
float model must give PyTorch's outputs and final states (max abs error <= 1e-4),
with zeros past each length. The quantized models (`amq quantize`, which lists
weight_hr and the reverse direction) run through `amq run` as well, their outputs
not depending on --chunk-steps; `amq info` names the options; bad h0 / c0 /
lengths are refused naming the tensor.

    options_cli_test.py AMQ WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from export_torch import export_rnn, load_safetensors, save_safetensors  # noqa: E402

AMQ, WORK = sys.argv[1:3]
os.makedirs(WORK, exist_ok=True)
T, B, I, H, P = 9, 3, 13, 21, 11
LENGTHS = [4, 9, 1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def amq(*args):
    p = subprocess.run([AMQ, *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def torch_io(rnn, seed):
    """Inputs (x, h0, c0, lengths) and PyTorch's outputs (h, h_n, c_n)."""
    gen = torch.Generator().manual_seed(seed)
    D = 2 if rnn.bidirectional else 1
    h_size = rnn.proj_size or rnn.hidden_size if isinstance(rnn, nn.LSTM) else rnn.hidden_size
    x = torch.randn(T, B, I, generator=gen)
    h0 = torch.randn(rnn.num_layers * D, B, h_size, generator=gen)
    io = {"x": x, "h0": h0, "lengths": torch.tensor(LENGTHS, dtype=torch.int64)}
    hx = h0
    if isinstance(rnn, nn.LSTM):
        io["c0"] = torch.randn(rnn.num_layers * D, B, rnn.hidden_size, generator=gen)
        hx = (h0, io["c0"])
    with torch.no_grad():
        out, final = rnn(pack_padded_sequence(x, io["lengths"], enforce_sorted=False), hx)
        out, _ = pad_packed_sequence(out, total_length=T)
    want = {"h": out, "h_n": final[0] if isinstance(final, tuple) else final}
    if isinstance(final, tuple):
        want["c_n"] = final[1]
    return ({k: v.numpy() for k, v in io.items()}, {k: v.numpy() for k, v in want.items()})


def case(name, rnn, seed):
    torch.manual_seed(seed)
    rnn = rnn.eval()
    model = os.path.join(WORK, name + ".safetensors")
    inputs = os.path.join(WORK, name + ".inputs.safetensors")
    export_rnn(model, rnn)
    io, want = torch_io(rnn, seed + 100)
    save_safetensors(inputs, io)

    # Float: PyTorch's outputs and final states.
    out = os.path.join(WORK, name + ".out.safetensors")
    rc, log = amq("run", model, "--inputs", inputs, "--outputs", out)
    check(rc == 0, f"{name}: amq run on the float model ({log.strip()})")
    if rc != 0:
        return
    got, _ = load_safetensors(out)
    for key, value in want.items():
        err = float(np.max(np.abs(got[key] - value))) if got[key].shape == value.shape else np.inf
        check(err <= 1e-4, f"{name}: float '{key}' {list(value.shape)} max abs error {err:.2e} <= 1e-4")
    padding = np.concatenate([got["h"][LENGTHS[b]:, b].ravel() for b in range(B)])
    check(padding.size > 0 and np.all(padding == 0), f"{name}: outputs past each length are 0")
    check(float(np.mean(np.abs(want["h"]))) > 1e-2, f"{name}: PyTorch's outputs are not ~0")

    # Quantized: amq quantize quantizes every matrix (weight_hr, the reverse
    # direction); amq run's outputs do not depend on --chunk-steps.
    amq_model = os.path.join(WORK, name + ".amq")
    rc, log = amq("quantize", "--in", model, "--wbits", "3", "--abits", "3", "-o", amq_model)
    check(rc == 0, f"{name}: amq quantize")
    matrices = ["weight_ih_l1", "weight_hh_l1"]
    if rnn.bidirectional:
        matrices += ["weight_ih_l1_reverse", "weight_hh_l0_reverse"]
    if isinstance(rnn, nn.LSTM) and rnn.proj_size:
        matrices += ["weight_hr_l0", "weight_hr_l1"] + (["weight_hr_l1_reverse"] if rnn.bidirectional else [])
    for m in matrices:
        check(f"\n{m} " in log, f"{name}: amq quantize lists {m}")
    runs = []
    for chunk in ("1000", "2"):
        q_out = os.path.join(WORK, f"{name}.q{chunk}.safetensors")
        rc, log = amq("run", amq_model, "--inputs", inputs, "--outputs", q_out, "--chunk-steps", chunk)
        check(rc == 0, f"{name}: amq run on the quantized model, --chunk-steps {chunk}")
        if rc == 0:
            runs.append(load_safetensors(q_out)[0])
    if len(runs) == 2:
        check(all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0]),
              f"{name}: quantized outputs the same for --chunk-steps 1000 and 2")
        err = float(np.mean(np.abs(runs[0]["h"] - want["h"])))
        check(err < 0.1, f"{name}: W3A3 mean abs error against float {err:.3f} < 0.1")

    rc, log = amq("info", amq_model)
    check(rc == 0 and ("bidirectional" in log) == rnn.bidirectional,
          f"{name}: amq info says whether it is bidirectional")
    if isinstance(rnn, nn.LSTM) and rnn.proj_size:
        check(f"proj {rnn.proj_size}" in log, f"{name}: amq info names proj_size")


def bad_inputs():
    """Refusals naming the tensor: using the models written by case()."""
    lstm = os.path.join(WORK, "lstm_bi_proj.safetensors")
    gru = os.path.join(WORK, "gru_bi.safetensors")
    io, _ = torch_io(nn.LSTM(I, H, 2, bidirectional=True, proj_size=P), 5)
    out = os.path.join(WORK, "bad.out.safetensors")
    bad = os.path.join(WORK, "bad.inputs.safetensors")
    cases = [
        (lstm, dict(io, h0=io["h0"][:, :, :5]), "tensor 'h0': shape [4, 3, 5], expected [4, 3, 11]"),
        (lstm, dict(io, lengths=np.array([4, 0, 1], dtype=np.int64)),
         "tensor 'lengths': sequence 1 is 0, expected 1..9"),
        (lstm, dict(io, lengths=np.array([4, 10, 1], dtype=np.int64)), "sequence 1 is 10, expected 1..9"),
        (lstm, dict(io, lengths=io["lengths"].astype(np.int32)), "tensor 'lengths': dtype I32, expected I64"),
        (gru, dict(io, h0=np.zeros((4, 3, 21), np.float32)), "tensor 'c0': the model is a GRU"),
    ]
    nan_h0 = io["h0"].copy()
    nan_h0[1, 2, 3] = np.nan
    cases.append((lstm, dict(io, h0=nan_h0), "tensor 'h0': [1, 2, 3] is nan"))
    for model, inputs, message in cases:
        save_safetensors(bad, inputs)
        rc, log = amq("run", model, "--inputs", bad, "--outputs", out)
        check(rc != 0 and message in log and bad in log, f"refused: {message} ({log.strip()[:200]})")
        check(not os.path.exists(out), "no outputs file after a refusal")


case("lstm_bi_proj", nn.LSTM(I, H, 2, bidirectional=True, proj_size=P), 1)
case("gru_bi", nn.GRU(I, H, 2, bidirectional=True), 2)
case("lstm_proj", nn.LSTM(I, H, 2, proj_size=P), 3)
bad_inputs()
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
