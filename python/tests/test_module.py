"""The amq module's core API: load, quantize, run, sessions, states, metadata,
eval, zero copies and every refusal (ctest python.module)."""
import numpy as np
import pytest
import torch

import amq
from amq import _amq
from amq import _export_torch as export_torch
from conftest import LM, max_err, randn, torch_rnn, vocab_words


def torch_out(rnn, x, hx=None):
    with torch.no_grad():
        out, state = rnn(torch.from_numpy(x), hx)
    return out.numpy(), state


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_float_parity_with_torch(tmp_path, arch):
    rnn = torch_rnn(arch, 37, 129, layers=2, seed=3)
    path = tmp_path / "m.safetensors"
    export_torch.export_rnn(str(path), rnn)
    m = amq.load(path)
    x = randn(7, 3, 37, seed=4)
    out, (h_n, c_n) = m.run(x, return_state=True)
    ref, state = torch_out(rnn, x)
    assert out.shape == (7, 3, 129) and out.dtype == np.float32
    assert max_err(out, ref) <= 1e-4
    if arch == "lstm":
        assert max_err(h_n, state[0]) <= 1e-4 and max_err(c_n, state[1]) <= 1e-4
    else:
        assert c_n is None and max_err(h_n, state) <= 1e-4


def test_metadata_properties(lstm_file):
    path, _ = lstm_file
    m = amq.load(path)
    assert (m.arch, m.layers, m.input_size, m.hidden_size) == ("lstm", 2, 37, 129)
    assert not m.quantized and m.k_w == 0 and m.vocab_size == 0 and m.bias
    assert not m.bidirectional and m.proj_size == 0 and m.output_size == 129
    q = amq.quantize(path, wbits=3, abits=2, method="greedy")
    assert q.quantized and (q.k_w, q.k_a, q.method) == (3, 2, "greedy")
    assert q.metadata["quantized_from"] == str(path)
    assert q.weight_bytes < m.weight_bytes
    assert "W3A2 greedy" in repr(q)


def test_initial_state_matches_torch(lstm_file):
    path, rnn = lstm_file
    m = amq.load(path)
    x = randn(5, 2, 37, seed=5)
    h0, c0 = randn(2, 2, 129, seed=6), randn(2, 2, 129, seed=7)
    out, (h_n, c_n) = m.run(x, h0=h0, c0=c0, return_state=True)
    ref, (rh, rc) = torch_out(rnn, x, (torch.from_numpy(h0), torch.from_numpy(c0)))
    assert max_err(out, ref) <= 1e-4
    assert max_err(h_n, rh) <= 1e-4 and max_err(c_n, rc) <= 1e-4


def test_quantized_save_load_round_trip(lstm_file, tmp_path):
    path, _ = lstm_file
    q = amq.quantize(path, wbits=2, abits=2)
    q.save(tmp_path / "m.amq")
    back = amq.load(tmp_path / "m.amq")
    assert back.quantized and (back.k_w, back.k_a) == (2, 2)
    x = randn(9, 2, 37, seed=8)
    assert np.array_equal(q.run(x), back.run(x))


def test_quantize_from_state_dict_equals_file(lstm_file):
    path, rnn = lstm_file
    prefixed = {"rnn." + k: v for k, v in rnn.state_dict().items()}
    a = amq.quantize(path, wbits=2, abits=3)
    b = amq.quantize(prefixed, wbits=2, abits=3)
    x = randn(6, 1, 37, seed=9)
    assert np.array_equal(a.run(x), b.run(x))


def test_session_steps_equal_run_and_carry_state(lstm_file):
    path, _ = lstm_file
    q = amq.quantize(path)
    x = randn(70, 3, 37, seed=10)  # longer than the runner's 64-step chunks
    whole = q.run(x)
    s = q.session(3)
    steps = np.stack([s.step(x[t]) for t in range(70)])
    # run() batches a chunk's input products: the same to rounding (as tests/test_rnn.cpp)
    assert max_err(steps, whole) <= 1e-5
    s.reset()
    parts = np.concatenate([s.run(x[:31]), s.run(x[31:])])
    assert max_err(parts, whole) <= 1e-5
    s.reset()
    assert np.array_equal(s.run(x), whole)  # reset() starts over


def test_step_kernels_fused_separate_and_chosen_agree(lstm_file):
    path, _ = lstm_file
    q = amq.quantize(path)  # W2A2, alternating T = 2: a fused step is built for it
    x = randn(9, 1, 37, seed=12)
    fused, separate, chosen = (q.session(1, step_kernels=k) for k in ("fused", "separate", "chosen"))
    assert fused.fused("run") and fused.fused("step")
    assert not separate.fused("run") and not separate.fused("step", layer=0)
    assert isinstance(chosen.fused("run"), bool)
    want = separate.run(x)
    assert max_err(fused.run(x), want) <= 1e-5
    assert max_err(chosen.run(x), want) <= 1e-5
    with pytest.raises(amq.ArgumentError, match="step_kernels='best': expected 'chosen', 'fused'"):
        q.session(1, step_kernels="best")
    with pytest.raises(amq.ArgumentError, match="call='walk', expected 'run' or 'step'"):
        fused.fused("walk")
    with pytest.raises(amq.Error, match="layer 5 out of range"):
        fused.fused("run", layer=5)


def test_torch_tensors_in_torch_out(lstm_file):
    path, _ = lstm_file
    m = amq.quantize(path)
    x = randn(4, 2, 37, seed=11)
    out = m.run(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and np.array_equal(out.numpy(), m.run(x))


def test_contiguous_inputs_are_not_copied(lstm_file):
    path, _ = lstm_file
    m = amq.quantize(path)
    s = m.session(2)
    x = randn(4, 2, 37, seed=12)
    s.run(x)
    assert _amq._last_input_address() == x.ctypes.data
    t = torch.from_numpy(randn(4, 2, 37, seed=13))
    s.run(t)
    assert _amq._last_input_address() == t.data_ptr()
    x1 = randn(2, 37, seed=14)
    s.step(x1)
    assert _amq._last_input_address() == x1.ctypes.data
    # A slice along the first axis is still contiguous: used in place, too.
    view = x[1:3]
    s.run(view)
    assert _amq._last_input_address() == view.ctypes.data


def test_language_model_parity_and_tokens(tmp_path):
    lm = LM("lstm", 40, 16, 24, seed=15)
    path = tmp_path / "lm.safetensors"
    export_torch.export_rnn(str(path), lm.rnn, lm.encoder, lm.decoder, vocab_words(40))
    m = amq.load(path)
    assert m.vocab_size == 40 and m.vocab[1] == "<eos>"
    tokens = np.random.default_rng(16).integers(0, 40, (6, 3), dtype=np.int64)
    h, logits = m.run(tokens)
    with torch.no_grad():
        ref, _ = lm(torch.from_numpy(tokens))
    assert logits.shape == (6, 3, 40) and max_err(logits, ref) <= 1e-4
    s = m.session(3)
    for t in range(6):
        ht, lt = s.step_tokens(tokens[t])
        assert np.array_equal(lt, logits[t]) and np.array_equal(ht, h[t])


def test_eval_perplexity_matches_torch(tmp_path):
    lm = LM("gru", 30, 12, 20, seed=17)
    path = tmp_path / "lm.safetensors"
    words = vocab_words(30)
    export_torch.export_rnn(str(path), lm.rnn, lm.encoder, lm.decoder, words)
    rng = np.random.default_rng(18)
    lines = [" ".join(words[i] for i in rng.integers(2, 30, 8)) + " nope" for _ in range(5)]
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines) + "\n")
    r = amq.eval(path, text)
    ids = [words.index(w) if w in words else 0 for line in lines for w in line.split() + ["<eos>"]]
    with torch.no_grad():
        logits, _ = lm(torch.tensor(ids[:-1]).view(-1, 1))
        nll = torch.nn.functional.cross_entropy(logits.view(-1, 30), torch.tensor(ids[1:]))
    assert r["tokens"] == len(ids) - 1
    assert abs(r["perplexity"] - float(torch.exp(nll))) <= 1e-3 * r["perplexity"]
    assert amq.eval(amq.load(path), text, limit=10)["tokens"] == 10


# ------------------------------------------------------------------ refusals

def test_error_classes():
    assert issubclass(amq.Error, RuntimeError)
    assert issubclass(amq.FormatError, amq.Error) and issubclass(amq.FormatError, ValueError)
    assert issubclass(amq.ArgumentError, amq.Error) and issubclass(amq.ArgumentError, ValueError)


def test_bad_paths_and_files(tmp_path):
    with pytest.raises(amq.Error, match="nope.amq"):
        amq.load(tmp_path / "nope.amq")
    bad = tmp_path / "bad.amq"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(amq.FormatError, match="bad.amq"):
        amq.load(bad)
    x = tmp_path / "x.safetensors"
    export_torch.save_safetensors(str(x), {"x": randn(2, 2)})
    with pytest.raises(amq.FormatError, match="x.safetensors"):
        amq.load(x)


def test_bad_inputs(lstm_file):
    path, _ = lstm_file
    m = amq.quantize(path)
    s = m.session(3)
    x = randn(4, 3, 37)
    with pytest.raises(amq.ArgumentError, match=r"x: dtype float64, expected float32 array \[T, batch=3, input_size=37\]"):
        s.run(x.astype(np.float64))
    with pytest.raises(amq.ArgumentError, match=r"x: 2 dimensions \(4, 3\), expected 3"):
        s.run(x[:, :, 0].copy())
    with pytest.raises(amq.ArgumentError, match=r"shape \(4, 3, 36\).*input_size is 37"):
        s.run(randn(4, 3, 36))
    with pytest.raises(amq.ArgumentError, match=r"shape \(4, 2, 37\).*batch is 3"):
        s.run(randn(4, 2, 37))
    with pytest.raises(amq.ArgumentError, match="not C-contiguous"):
        s.run(randn(37, 3, 4).transpose(2, 1, 0))
    with pytest.raises(amq.ArgumentError, match="got a list, expected a numpy float32"):
        s.run([[[0.0] * 37] * 3])
    with pytest.raises(amq.ArgumentError, match="not a language model"):
        s.run_tokens(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(amq.ArgumentError, match=r"h0: shape \(2, 3, 128\)"):
        s.set_state(randn(2, 3, 128))
    bad = x.copy()
    bad[2, 1, 5] = np.nan
    with pytest.raises(amq.Error, match=r"x\[7\]\[5\] is nan, expected a finite value"):
        s.run(bad)
    with pytest.raises(amq.ArgumentError, match="batch=0"):
        m.session(0)
    if torch.cuda.is_available():  # pragma: no cover - CPU-only machines
        with pytest.raises(amq.ArgumentError, match="CPU tensor"):
            m.run(torch.zeros(2, 3, 37, device="cuda"))


def test_bad_quantize_options(lstm_file):
    path, _ = lstm_file
    with pytest.raises(amq.ArgumentError, match="unknown quantization method 'best'"):
        amq.quantize(path, method="best")
    with pytest.raises(amq.ArgumentError, match="wbits=3: method ternary stores 2 planes"):
        amq.quantize(path, method="ternary", wbits=3)
    with pytest.raises(amq.ArgumentError, match="abits=5: expected 1..4"):
        amq.quantize(path, abits=5)
    q = amq.quantize(path)
    with pytest.raises(amq.ArgumentError, match="already a quantized model"):
        amq.quantize(q)
    with pytest.raises(amq.ArgumentError, match="expected a model path"):
        amq.quantize(3.5)


def test_gru_and_lm_refusals(tmp_path):
    rnn = torch_rnn("gru", 10, 20, seed=19)
    path = tmp_path / "g.safetensors"
    export_torch.export_rnn(str(path), rnn)
    s = amq.load(path).session(1)
    with pytest.raises(amq.ArgumentError, match="GRU, which has no cell state"):
        s.set_state(None, randn(1, 1, 20))
    with pytest.raises(amq.Error, match="not a language model"):
        amq.eval(path, path)
    lm = LM("lstm", 20, 8, 8, seed=20)
    lm_path = tmp_path / "lm.safetensors"
    export_torch.export_rnn(str(lm_path), lm.rnn, lm.encoder, lm.decoder, vocab_words(20))
    s = amq.load(lm_path).session(2)
    with pytest.raises(amq.ArgumentError, match="is a language model"):
        s.run(randn(3, 2, 8))
    with pytest.raises(amq.ArgumentError, match=r"tokens: dtype int32, expected int64"):
        s.run_tokens(np.zeros((3, 2), dtype=np.int32))
    with pytest.raises(amq.Error, match="token 20 .* out of range, expected 0..19"):
        s.run_tokens(np.full((3, 2), 20, dtype=np.int64))
    with pytest.raises(amq.Error, match="cannot open the text file"):
        amq.eval(lm_path, tmp_path / "missing.txt")


def test_bidirectional_and_lengths_refusals(tmp_path):
    rnn = torch_rnn("lstm", 10, 20, layers=1, seed=21, bidirectional=True, proj_size=7)
    path = tmp_path / "b.safetensors"
    export_torch.export_rnn(str(path), rnn)
    m = amq.load(path)
    assert (m.bidirectional, m.proj_size, m.h_size, m.output_size) == (True, 7, 7, 14)
    s = m.session(2)
    with pytest.raises(amq.Error, match="run"):
        s.step(randn(2, 10))
    x = randn(5, 2, 10)
    with pytest.raises(amq.ArgumentError, match=r"lengths: shape \(3,\), expected int64 array \[batch=2\]"):
        s.run(x, np.array([1, 2, 3], dtype=np.int64))
    with pytest.raises(amq.ArgumentError, match="lengths: dtype int32"):
        s.run(x, np.array([1, 2], dtype=np.int32))
    with pytest.raises(amq.Error, match="lengths"):
        s.run(x, np.array([6, 2], dtype=np.int64))
    with pytest.raises(amq.ArgumentError, match=r"h0: shape \(2, 2, 20\).*h_size is 7"):
        s.set_state(randn(2, 2, 20))
