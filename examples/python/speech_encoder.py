#!/usr/bin/python3
"""A PyTorch model in, a faster one out: the LSTM of a speech-style encoder
(2-layer bidirectional LSTM with projections, batch_first) quantized by amq to
2-bit weights and 2-bit activations in memory, and swapped in.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/speech_encoder.py

(PYTHONPATH=<prefix>/lib/python3.11/site-packages after `cmake --install`.)
The weights here are random: with your trained model, check the accuracy of the
quantized one on your own data (docs/ACCURACY.md).
"""
import copy
import time

import torch

import amq
import amq.torch


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(80, 512, num_layers=2, bidirectional=True, proj_size=128,
                                  batch_first=True)
        self.out = torch.nn.Linear(256, 40)

    def forward(self, feats):
        h, _ = self.lstm(feats)
        return self.out(h)


def per_frame_us(model, feats, repeats=3):
    with torch.no_grad():
        model(feats)  # warm up
        start = time.perf_counter()
        for _ in range(repeats):
            model(feats)
    return (time.perf_counter() - start) / repeats / feats.shape[1] * 1e6


torch.set_num_threads(1)   # one thread each, to compare like with like
amq.set_num_threads(1)
torch.manual_seed(0)
model = Encoder().eval()           # your trained model: model.load_state_dict(...)
feats = torch.randn(1, 300, 80)    # 3 s of 80 filterbank features, 100 frames/s

fast = copy.deepcopy(model)
fast.lstm = amq.torch.from_module(model.lstm, wbits=2, abits=2)  # the two lines
print("quantized:", fast.lstm)

exact = copy.deepcopy(model)
exact.lstm = amq.torch.from_module(model.lstm, wbits=None)  # amq's float runner
with torch.no_grad():
    ref, out, out_float = model(feats), fast(feats), exact(feats)
print(f"amq float vs torch: max |diff| {(out_float - ref).abs().max():.2e}")
print(f"amq W2A2 vs torch:  relative error {((out - ref).norm() / ref.norm()):.3f} "
      f"(random weights; measure your model's accuracy)")

t_torch, t_amq = per_frame_us(model, feats), per_frame_us(fast, feats)
print(f"per frame, 1 thread: torch float {t_torch:.1f} us, amq W2A2 {t_amq:.1f} us "
      f"({t_torch / t_amq:.1f}x)")
print(f"LSTM weights: {fast.lstm.model.weight_bytes / 1e6:.2f} MB "
      f"(float: {exact.lstm.model.weight_bytes / 1e6:.2f} MB)")
fast.lstm.model.save("/tmp/encoder_lstm.amq")  # later: amq.torch.LSTM("/tmp/encoder_lstm.amq", batch_first=True)
print("saved /tmp/encoder_lstm.amq")
