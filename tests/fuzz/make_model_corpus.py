#!/usr/bin/python3
"""Writes the seeds of fuzz_model_loader.cpp (corpus/model/) that this script owns:
tiny models with every nn.LSTM / nn.GRU option (bidirectional, proj_size), float
and quantized, and a valid model whose header padding is NUL bytes or a tab (which
the loader refuses: safetensors pads with spaces only). Needs torch and a built
amq (for `amq quantize`):
    /usr/bin/python3 tests/fuzz/make_model_corpus.py build/tools/amq
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "model")
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))


def repadded(data, pad):
    """The same file with its header's trailing spaces replaced by `pad` bytes
    (at least one: the header grows by 8 bytes when it has no padding)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + n].rstrip(b" ")
    size = n if n > len(header) else n + 8
    header += pad * (size - len(header))
    return struct.pack("<Q", size) + header + data[8 + n:]


def main():
    import torch
    import torch.nn as nn
    from export_torch import export_rnn

    amq = sys.argv[1]
    torch.manual_seed(11)
    models = {
        "lstm_bi_proj_tiny": nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2),
        "gru_bi_tiny": nn.GRU(3, 4, 1, bidirectional=True, bias=False),
    }
    for name, rnn in models.items():
        path = os.path.join(OUT, name + ".safetensors")
        export_rnn(path, rnn)
        subprocess.run([os.path.abspath(amq), "quantize", "--in", name + ".safetensors", "--wbits",
                        "2", "--abits", "2", "-o", name + ".amq"],
                       check=True, stdout=subprocess.DEVNULL, cwd=OUT)
    with open(os.path.join(OUT, "lstm_tiny.safetensors"), "rb") as f:
        tiny = f.read()
    for name, pad in (("nul_padding", b"\0"), ("tab_padding", b"\t")):
        with open(os.path.join(OUT, f"lstm_tiny_{name}.safetensors"), "wb") as f:
            f.write(repadded(tiny, pad))
    print("wrote the option and padding seeds to", OUT)


if __name__ == "__main__":
    main()
