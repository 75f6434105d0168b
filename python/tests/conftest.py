"""Shared fixtures of the amq Python module's tests (run by ctest: python.*).

Environment (set by python/CMakeLists.txt): PYTHONPATH=<build>/python, AMQ_CLI
(the amq tool), AMQ_SOURCE_DIR, AMQ_BUILD_DIR."""
import os
import subprocess

import numpy as np
import pytest
import torch

import amq
from amq import _export_torch as export_torch

torch.set_num_threads(1)

SOURCE_DIR = os.environ.get("AMQ_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("AMQ_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
AMQ_CLI = os.environ.get("AMQ_CLI", os.path.join(BUILD_DIR, "tools", "amq"))


def torch_rnn(arch, input_size, hidden_size, layers=1, seed=0, **kw):
    """A seeded nn.LSTM / nn.GRU (PyTorch's default init), in eval mode."""
    torch.manual_seed(seed)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[arch]
    return cls(input_size, hidden_size, layers, **kw).eval()


class LM(torch.nn.Module):
    """Embedding + RNN + linear decoder, as a user's language model."""

    def __init__(self, arch, vocab, emb, hidden, layers=1, seed=0, tied=False):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = torch.nn.Embedding(vocab, emb)
        self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[arch](emb, hidden, layers)
        self.decoder = torch.nn.Linear(hidden, vocab)
        if tied:
            self.decoder.weight = self.encoder.weight
        self.eval()

    def forward(self, tokens, hx=None):
        out, hx = self.rnn(self.encoder(tokens), hx)
        return self.decoder(out), hx


def vocab_words(n):
    return ["<unk>", "<eos>"] + [f"w{i}" for i in range(2, n)]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def run_cli(*args, check=True):
    """The amq tool with args; returns the CompletedProcess (text)."""
    p = subprocess.run([AMQ_CLI, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"amq {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@pytest.fixture
def lstm_file(tmp_path):
    """(path of a float 2-layer LSTM, I=37, H=129 file, the nn.LSTM)."""
    rnn = torch_rnn("lstm", 37, 129, layers=2, seed=1)
    path = tmp_path / "lstm.safetensors"
    export_torch.export_rnn(str(path), rnn)
    return path, rnn
