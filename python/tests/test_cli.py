"""The module against the amq tool: the same quantized model file, the same
outputs bit for bit as `amq run`, the same perplexity as `amq eval` (ctest
python.cli)."""
import json

import numpy as np
import pytest

import amq
from amq import _export_torch as export_torch
from conftest import LM, randn, run_cli, torch_rnn, vocab_words


@pytest.mark.parametrize("arch,wbits,abits,method", [
    ("lstm", 2, 2, "alternating"), ("gru", 3, 2, "refined"), ("lstm", 1, 4, "uniform")])
def test_run_equals_cli_bit_for_bit(tmp_path, arch, wbits, abits, method):
    rnn = torch_rnn(arch, 37, 129, layers=2, seed=wbits)
    src = tmp_path / "m.safetensors"
    export_torch.export_rnn(str(src), rnn)
    q = amq.quantize(src, wbits=wbits, abits=abits, method=method)
    q.save(tmp_path / "py.amq")
    run_cli("quantize", "--in", src, "--wbits", wbits, "--abits", abits, "--method", method,
            "-o", tmp_path / "cli.amq")
    # The same file, byte for byte (quantized_from names the same path).
    assert (tmp_path / "py.amq").read_bytes() == (tmp_path / "cli.amq").read_bytes()
    x = randn(70, 3, 37, seed=abits)  # past the runner's 64-step chunk
    export_torch.save_safetensors(str(tmp_path / "in.safetensors"), {"x": x})
    run_cli("run", tmp_path / "cli.amq", "--inputs", tmp_path / "in.safetensors",
            "--outputs", tmp_path / "out.safetensors")
    cli_out, _ = export_torch.load_safetensors(str(tmp_path / "out.safetensors"))
    py_out = q.run(x)
    assert py_out.dtype == cli_out["h"].dtype and np.array_equal(py_out, cli_out["h"])


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_bidirectional_states_lengths_equal_cli(tmp_path, arch):
    """A 2-layer bidirectional network (LSTM: with proj_size), batch 3, odd sizes,
    initial states and lengths: Python's outputs and final states equal `amq run`'s."""
    kw = {"bidirectional": True, "proj_size": 11} if arch == "lstm" else {"bidirectional": True}
    rnn = torch_rnn(arch, 23, 45, layers=2, seed=7, **kw)
    src = tmp_path / "m.safetensors"
    export_torch.export_rnn(str(src), rnn)
    q = amq.quantize(src, wbits=2, abits=2)
    q.save(tmp_path / "m.amq")
    assert q.bidirectional and q.output_size == 2 * kw.get("proj_size", 45)
    x = randn(9, 3, 23, seed=8)
    inputs = {"x": x, "h0": randn(4, 3, q.h_size, seed=9),
              "lengths": np.array([9, 4, 6], dtype=np.int64)}
    if arch == "lstm":
        inputs["c0"] = randn(4, 3, 45, seed=10)
    export_torch.save_safetensors(str(tmp_path / "in.safetensors"), inputs)
    run_cli("run", tmp_path / "m.amq", "--inputs", tmp_path / "in.safetensors",
            "--outputs", tmp_path / "out.safetensors")
    cli, _ = export_torch.load_safetensors(str(tmp_path / "out.safetensors"))
    out, (h_n, c_n) = q.run(x, h0=inputs["h0"], c0=inputs.get("c0"), lengths=inputs["lengths"],
                            return_state=True)
    assert np.array_equal(out, cli["h"]) and np.array_equal(h_n, cli["h_n"])
    if arch == "lstm":
        assert np.array_equal(c_n, cli["c_n"])
    assert not out[4:, 1].any() and not out[6:, 2].any()  # zeros past each length


def test_language_model_run_and_eval_equal_cli(tmp_path):
    lm = LM("lstm", 60, 20, 20, layers=2, seed=3)
    words = vocab_words(60)
    src = tmp_path / "lm.safetensors"
    export_torch.export_rnn(str(src), lm.rnn, lm.encoder, lm.decoder, words)
    q = amq.quantize(src, wbits=2, abits=2, lm_parts=True)
    q.save(tmp_path / "lm.amq")
    tokens = np.random.default_rng(4).integers(0, 60, (9, 2), dtype=np.int64)
    export_torch.save_safetensors(str(tmp_path / "in.safetensors"), {"tokens": tokens})
    run_cli("run", tmp_path / "lm.amq", "--inputs", tmp_path / "in.safetensors",
            "--outputs", tmp_path / "out.safetensors")
    cli, _ = export_torch.load_safetensors(str(tmp_path / "out.safetensors"))
    h, logits = q.run(tokens)
    assert np.array_equal(h, cli["h"]) and np.array_equal(logits, cli["logits"])

    rng = np.random.default_rng(5)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(words[i] for i in rng.integers(0, 60, 12))
                              for _ in range(20)) + "\n")
    cli_eval = json.loads(run_cli("eval", tmp_path / "lm.amq", "--text", text, "--json").stdout)
    py_eval = amq.eval(tmp_path / "lm.amq", text)
    assert py_eval["tokens"] == cli_eval["tokens"]
    assert py_eval["perplexity"] == pytest.approx(cli_eval["perplexity"], rel=1e-5)
