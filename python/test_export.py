#!/usr/bin/python3
"""Self-test of export_torch.py: safetensors round trip, export of random LSTM/GRU
models compared bit-exactly with their state_dicts, refusals, header layout.
Run: /usr/bin/python3 python/test_export.py (exits non-zero on failure)."""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_torch as ex  # noqa: E402


def parse_header(path):
    """Torch-free reading of a safetensors header: (header size, header dict, file size)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n]), len(data)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Export(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def check_layout(self, path, names):
        """Header padded to 8 bytes, tensors contiguous in `names` order, ending at EOF."""
        n, header, size = parse_header(path)
        self.assertEqual(n % 8, 0)
        self.assertEqual([k for k in header if k != "__metadata__"], list(names))
        offset = 0
        for name in names:
            begin, end = header[name]["data_offsets"]
            self.assertEqual(begin, offset, name)
            offset = end
        self.assertEqual(8 + n + offset, size)
        return header

    def test_round_trip_dtypes(self):
        tensors = {
            "f32": np.array([[0.0, -0.0, 1.5, np.inf], [-np.inf, np.nan, 1e-45, -3.4e38]], np.float32),
            "i64": np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], np.int64),
            "u64": np.array([[0, 1, 2**63, 2**64 - 1]], np.uint64).reshape(2, 1, 2),
            "empty": np.zeros((0, 3), np.float32),
            "scalar": np.array(7, np.int64),
            "odd": np.arange(3, dtype=np.uint8),  # 3 bytes: the next tensor is unaligned
            "after_odd": np.arange(5, dtype=np.float32),
        }
        meta = {"format": "amq-float", "note": "a\nb \"quoted\" \u00e9"}
        p = self.path("t.safetensors")
        ex.save_safetensors(p, tensors, meta)
        got, got_meta = ex.load_safetensors(p)
        self.assertEqual(got_meta, meta)
        self.assertEqual(list(got), list(tensors))
        for name, a in tensors.items():
            self.assertTrue(same_bits(got[name], a), name)
        header = self.check_layout(p, tensors)
        self.assertEqual(header["i64"]["dtype"], "I64")
        self.assertEqual(header["u64"]["dtype"], "U64")
        self.assertEqual(header["u64"]["shape"], [2, 1, 2])
        self.assertEqual(header["scalar"]["shape"], [])

    def test_big_endian_input_is_written_little_endian(self):
        p = self.path("be.safetensors")
        ex.save_safetensors(p, {"x": np.array([1.0, 2.0], dtype=">f4")})
        with open(p, "rb") as f:
            self.assertEqual(f.read()[-8:], struct.pack("<2f", 1.0, 2.0))

    def export_and_compare(self, rnn, **kw):
        p = self.path("m.safetensors")
        ex.export_rnn(p, rnn, **kw)
        tensors, meta = ex.load_safetensors(p)
        expected = {k: v.numpy() for k, v in rnn.state_dict().items()}
        for name, module in (("embedding", kw.get("embedding")), ("decoder", kw.get("decoder"))):
            if module is not None:
                expected.update({f"{name}.{k}": v.numpy() for k, v in module.state_dict().items()})
        if kw.get("tied"):
            del expected["decoder.weight"]
        self.assertEqual(list(tensors), list(expected))
        for name, a in expected.items():
            self.assertTrue(same_bits(tensors[name], a), name)
        self.check_layout(p, expected)
        return tensors, meta

    def test_lstm_and_gru(self):
        torch.manual_seed(3)
        for kind, arch in ((nn.LSTM, "lstm"), (nn.GRU, "gru")):
            for bias in (True, False):
                rnn = kind(37, 129, 2, bias=bias)
                tensors, meta = self.export_and_compare(rnn, extra_metadata={"perplexity_test": 1.5})
                self.assertEqual(meta, {"format": "amq-float", "format_version": "1", "arch": arch,
                                        "layers": "2", "input_size": "37", "hidden_size": "129",
                                        "perplexity_test": "1.5"})
                self.assertEqual("bias_ih_l1" in tensors, bias)
                self.assertEqual(tensors["weight_hh_l1"].shape, ({"lstm": 4, "gru": 3}[arch] * 129, 129))

    def test_every_option(self):
        """bidirectional and proj_size: PyTorch's tensors (the *_reverse ones, weight_hr_lL)
        as they are, and the metadata keys; rebuilt from a bare state_dict."""
        torch.manual_seed(5)
        for rnn, extra in ((nn.LSTM(13, 21, 2, bidirectional=True, proj_size=11),
                            {"bidirectional": "true", "proj_size": "11"}),
                           (nn.GRU(13, 21, 3, bidirectional=True, bias=False), {"bidirectional": "true"}),
                           (nn.LSTM(13, 21, 1, proj_size=20), {"proj_size": "20"})):
            with self.subTest(repr(rnn)):
                tensors, meta = self.export_and_compare(rnn)
                for key in ("bidirectional", "proj_size"):
                    self.assertEqual(meta.get(key), extra.get(key))
                state = {"rnn." + k: v for k, v in rnn.state_dict().items()}
                back, _, _, _, ignored = ex.modules_from_state_dict(state)
                self.assertEqual(ignored, [])
                self.assertEqual((type(back), back.num_layers, back.bidirectional, back.bias),
                                 (type(rnn), rnn.num_layers, rnn.bidirectional, rnn.bias))
                self.assertEqual(getattr(back, "proj_size", 0), getattr(rnn, "proj_size", 0))
                for k, v in rnn.state_dict().items():
                    self.assertTrue(torch.equal(back.state_dict()[k], v), k)
        # A language model with a projected LSTM: the decoder reads the projected h.
        rnn, emb = nn.LSTM(6, 9, proj_size=4), nn.Embedding(13, 6)
        tensors, meta = self.export_and_compare(rnn, embedding=emb, decoder=nn.Linear(4, 13))
        self.assertEqual(meta["proj_size"], "4")

    def test_language_models(self):
        torch.manual_seed(4)
        vocab = [f"w{i}" for i in range(11)] + ["<unk>", "é"]
        rnn, emb, dec = nn.LSTM(6, 5), nn.Embedding(13, 6), nn.Linear(5, 13)
        tensors, meta = self.export_and_compare(rnn, embedding=emb, decoder=dec, vocab=vocab)
        self.assertEqual(meta["vocab"].split("\n"), vocab)
        self.assertEqual((meta["vocab_size"], meta["tied"]), ("13", "false"))

        rnn, emb = nn.GRU(5, 5), nn.Embedding(13, 5)
        dec = nn.Linear(5, 13)
        dec.weight = emb.weight
        tensors, meta = self.export_and_compare(rnn, embedding=emb, decoder=dec, vocab=vocab, tied=True)
        self.assertNotIn("decoder.weight", tensors)
        self.assertIn("decoder.bias", tensors)
        self.assertEqual(meta["tied"], "true")

    def test_refusals(self):
        p = self.path("bad.safetensors")
        lstm = nn.LSTM(4, 5)
        emb, dec = nn.Embedding(7, 4), nn.Linear(5, 7)
        cases = [
            ("bidirectional language model", dict(rnn=nn.LSTM(4, 5, bidirectional=True),
                                                  embedding=emb, decoder=nn.Linear(10, 7))),
            (r"decoder.weight shape \(7, 5\) != \(vocab_size, h_size\) = \(7, 2\)",
             dict(rnn=nn.LSTM(4, 5, proj_size=2), embedding=emb, decoder=dec)),
            ("nn.LSTM or nn.GRU", dict(rnn=nn.RNN(4, 5))),
            ("'\\\\n'", dict(rnn=lstm, embedding=emb, decoder=dec, vocab=["a\nb"] + ["w"] * 6)),
            ("6 words", dict(rnn=lstm, embedding=emb, decoder=dec, vocab=["w"] * 6)),
            ("embedding width 3", dict(rnn=lstm, embedding=nn.Embedding(7, 3), decoder=dec)),
            (r"decoder.weight shape \(7, 4\)", dict(rnn=lstm, embedding=emb, decoder=nn.Linear(4, 7))),
            (r"decoder.weight shape \(8, 5\)", dict(rnn=lstm, embedding=emb, decoder=nn.Linear(5, 8))),
            ("needs a decoder", dict(rnn=lstm, embedding=emb)),
            ("without an embedding", dict(rnn=lstm, decoder=dec)),
            ("input_size == h_size", dict(rnn=lstm, embedding=emb, tied=True)),
            ("differs from embedding", dict(rnn=nn.LSTM(5, 5), embedding=nn.Embedding(7, 5),
                                            decoder=dec, tied=True)),
            ("reserved", dict(rnn=lstm, extra_metadata={"arch": "gru"})),
        ]
        for pattern, kw in cases:
            with self.subTest(pattern):
                with self.assertRaisesRegex(ValueError, pattern):
                    ex.export_rnn(p, **kw)
        self.assertFalse(os.path.exists(p))

    def test_loader_rejects_corrupt_files(self):
        p = self.path("c.safetensors")

        def write(header, body=b"\0" * 16):
            text = json.dumps(header).encode()
            with open(p, "wb") as f:
                f.write(struct.pack("<Q", len(text)) + text + body)

        t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        cases = [
            ("unknown dtype", {"a": dict(t, dtype="Q8")}),
            ("expected 4", {"a": dict(t, shape=[1])}),
            ("not within", {"a": dict(t, shape=[5], data_offsets=[0, 20])}),
            ("non-negative", {"a": dict(t, shape=[-2])}),
            ("overlap", {"a": t, "b": dict(t, data_offsets=[4, 12])}),
            ("strings", {"__metadata__": {"k": 1}, "a": t}),
        ]
        for pattern, header in cases:
            with self.subTest(pattern):
                write(header)
                with self.assertRaisesRegex(ValueError, pattern):
                    ex.load_safetensors(p)
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", 10**6) + b"{}")
        with self.assertRaisesRegex(ValueError, "header size"):
            ex.load_safetensors(p)
        text = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + b"\0")
        with self.assertRaisesRegex(ValueError, "duplicate"):
            ex.load_safetensors(p)

    def test_cli_random_with_io(self):
        m, io = self.path("m.safetensors"), self.path("m.io.safetensors")
        self.assertEqual(ex.main(["--random", "gru", "--layers", "2", "--input-size", "37", "--hidden-size",
                                  "129", "--seed", "1", "--no-bias", "-o", m, "--io", io,
                                  "--steps", "5", "--batch", "3"]), 0)
        tensors, meta = ex.load_safetensors(m)
        data, _ = ex.load_safetensors(io)
        self.assertEqual(data["x"].shape, (5, 3, 37))
        self.assertNotIn("bias_ih_l0", tensors)
        rnn = nn.GRU(37, 129, 2, bias=False)
        rnn.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        with torch.no_grad():
            h, _ = rnn(torch.from_numpy(data["x"]))
        self.assertTrue(same_bits(h.numpy(), data["h"]))

    def test_cli_random_lm_with_io(self):
        m, io = self.path("lm.safetensors"), self.path("lm.io.safetensors")
        self.assertEqual(ex.main(["--random-lm", "lstm", "--vocab", "50", "--emb", "16", "--hidden-size", "24",
                                  "-o", m, "--io", io]), 0)
        tensors, meta = ex.load_safetensors(m)
        data, _ = ex.load_safetensors(io)
        self.assertEqual(meta["vocab"].split("\n"), [f"w{i}" for i in range(50)])
        self.assertEqual(data["tokens"].dtype, np.int64)
        self.assertEqual(data["logits"].shape, (5, 3, 50))
        logits = data["h"] @ tensors["decoder.weight"].T + tensors["decoder.bias"]
        np.testing.assert_allclose(logits, data["logits"], rtol=1e-5, atol=1e-5)
        self.assertEqual(ex.main(["--random-lm", "gru", "--vocab", "50", "--emb", "16", "--hidden-size", "24",
                                  "--tied", "-o", m]), 1)

    def test_cli_checkpoints(self):
        torch.manual_seed(5)

        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder, self.rnn, self.decoder = nn.Embedding(9, 6), nn.LSTM(6, 6, 2), nn.Linear(6, 9)
                self.decoder.weight = self.encoder.weight

        lm = LM()
        ck, out = self.path("lm.pt"), self.path("lm.safetensors")
        vocab = self.path("vocab.txt")
        with open(vocab, "w") as f:
            f.write("\n".join(f"v{i}" for i in range(9)) + "\n")
        # state_dict with an extra prefix, tied decoder
        torch.save({"model." + k: v for k, v in lm.state_dict().items()}, ck)
        self.assertEqual(ex.main(["--checkpoint", ck, "--vocab-file", vocab, "-o", out]), 0)
        tensors, meta = ex.load_safetensors(out)
        self.assertEqual(meta["tied"], "true")
        self.assertEqual(meta["vocab"], "\n".join(f"v{i}" for i in range(9)))
        self.assertTrue(same_bits(tensors["weight_hh_l1"], lm.rnn.weight_hh_l1.detach().numpy()))
        self.assertTrue(same_bits(tensors["embedding.weight"], lm.encoder.weight.detach().numpy()))
        # a whole module (plain nn.GRU)
        gru = nn.GRU(3, 4)
        torch.save(gru, ck)
        self.assertEqual(ex.main(["--checkpoint", ck, "-o", out]), 0)
        tensors, meta = ex.load_safetensors(out)
        self.assertEqual(meta["arch"], "gru")
        self.assertTrue(same_bits(tensors["weight_ih_l0"], gru.weight_ih_l0.detach().numpy()))
        # a bidirectional projected LSTM's state_dict
        bi = nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2)
        torch.save(bi.state_dict(), ck)
        self.assertEqual(ex.main(["--checkpoint", ck, "-o", out]), 0)
        tensors, meta = ex.load_safetensors(out)
        self.assertEqual((meta["bidirectional"], meta["proj_size"]), ("true", "2"))
        self.assertTrue(same_bits(tensors["weight_hr_l1_reverse"], bi.weight_hr_l1_reverse.detach().numpy()))
        # refused: a GRU state_dict with a projection
        state = nn.GRU(3, 4).state_dict()
        state["weight_hr_l0"] = torch.zeros(2, 4)
        torch.save(state, ck)
        self.assertEqual(ex.main(["--checkpoint", ck, "-o", out]), 1)

    def test_loader_needs_no_torch(self):
        p = self.path("m.safetensors")
        ex.export_rnn(p, nn.LSTM(3, 4))
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import export_torch as ex; "
                "t, m = ex.load_safetensors(sys.argv[2]); "
                "assert 'torch' not in sys.modules and m['arch'] == 'lstm' and t['weight_hh_l0'].shape == (16, 4)")
        subprocess.run([sys.executable, "-c", code, HERE, p], check=True)
        n, header, size = parse_header(p)
        self.assertEqual(header["__metadata__"]["format"], "amq-float")


if __name__ == "__main__":
    unittest.main()
