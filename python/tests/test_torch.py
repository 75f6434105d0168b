"""amq.torch: from_module and the drop-in LSTM / GRU / LanguageModel modules
against PyTorch's own, with every forward() convention (ctest python.torch)."""
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import amq
import amq.torch
from amq import _export_torch as export_torch
from conftest import LM, max_err, torch_rnn


def close(a, b, tol=1e-4):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert max_err(a.detach().numpy(), b.detach().numpy()) <= tol


def compare(ref, fast, x, hx=None):
    with torch.no_grad():
        r_out, r_state = ref(x, hx)
    out, state = fast(x, hx)
    close(out, r_out)
    if isinstance(ref, torch.nn.LSTM):
        close(state[0], r_state[0])
        close(state[1], r_state[1])
    else:
        close(state, r_state)
    return out


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_drop_in_float_parity(arch):
    ref = torch_rnn(arch, 33, 67, layers=2, seed=1)
    fast = amq.torch.from_module(ref, wbits=None)
    assert isinstance(fast, amq.torch.LSTM if arch == "lstm" else amq.torch.GRU)
    assert (fast.input_size, fast.hidden_size, fast.num_layers) == (33, 67, 2)
    x = torch.randn(6, 3, 33, generator=torch.Generator().manual_seed(2))
    compare(ref, fast, x)
    # initial states
    g = torch.Generator().manual_seed(3)
    h0 = torch.randn(2, 3, 67, generator=g)
    hx = (h0, torch.randn(2, 3, 67, generator=g)) if arch == "lstm" else h0
    compare(ref, fast, x, hx)
    # unbatched [T, I], with and without a state
    compare(ref, fast, x[:, 0])
    hx1 = tuple(t[:, 0] for t in hx) if arch == "lstm" else h0[:, 0]
    compare(ref, fast, x[:, 0], hx1)
    # the same module called again starts from zeros, not from the last state
    compare(ref, fast, x)


def test_batch_first():
    ref = torch_rnn("lstm", 20, 31, layers=1, seed=4, batch_first=True)
    fast = amq.torch.from_module(ref, wbits=None)
    assert fast.batch_first
    x = torch.randn(3, 5, 20, generator=torch.Generator().manual_seed(5))
    out = compare(ref, fast, x)
    assert out.is_contiguous()


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_bidirectional_and_projection_parity(arch):
    kw = {"bidirectional": True}
    if arch == "lstm":
        kw["proj_size"] = 13
    ref = torch_rnn(arch, 29, 41, layers=2, seed=6, **kw)
    fast = amq.torch.from_module(ref, wbits=None)
    assert fast.bidirectional and fast.proj_size == kw.get("proj_size", 0)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(7, 3, 29, generator=g)
    out = compare(ref, fast, x)
    assert out.shape == (7, 3, 2 * kw.get("proj_size", 41))
    h0 = torch.randn(4, 3, kw.get("proj_size", 41), generator=g)
    hx = (h0, torch.randn(4, 3, 41, generator=g)) if arch == "lstm" else h0
    compare(ref, fast, x, hx)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_sequences(bidirectional):
    ref = torch_rnn("lstm", 11, 19, layers=2, seed=8, bidirectional=bidirectional)
    fast = amq.torch.from_module(ref, wbits=None)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(6, 4, 11, generator=g)
    lengths = torch.tensor([3, 6, 1, 5])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        r_out, (r_h, r_c) = ref(packed)
    out, (h, c) = fast(packed)
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(out.batch_sizes, r_out.batch_sizes)
    close(out.data, r_out.data)
    close(h, r_h)
    close(c, r_c)
    padded, lens = pad_packed_sequence(out)
    assert torch.equal(lens, lengths)
    # with initial states (given in the batch's own order, as nn.LSTM takes them)
    D = 2 if bidirectional else 1
    hx = (torch.randn(2 * D, 4, 19, generator=g), torch.randn(2 * D, 4, 19, generator=g))
    with torch.no_grad():
        r_out, (r_h, r_c) = ref(packed, hx)
    out, (h, c) = fast(packed, hx)
    close(out.data, r_out.data)
    close(h, r_h)
    close(c, r_c)


def test_language_model_drop_in():
    lm = LM("lstm", 50, 24, 24, layers=1, seed=10, tied=True)
    fast = amq.torch.from_module(lm, wbits=None)
    assert isinstance(fast, amq.torch.LanguageModel) and fast.model.tied
    tokens = torch.randint(0, 50, (5, 2), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        ref, (rh, rc) = lm(tokens)
    logits, (h, c) = fast(tokens)
    close(logits, ref)
    close(h, rh)
    close(c, rc)


def test_quantized_in_memory_equals_quantized_file(tmp_path):
    ref = torch_rnn("gru", 25, 70, layers=2, seed=12)
    path = tmp_path / "g.safetensors"
    export_torch.export_rnn(str(path), ref)
    fast = amq.torch.from_module(ref, wbits=2, abits=2)
    from_file = amq.quantize(path, wbits=2, abits=2)
    assert fast.model.quantized and (fast.model.k_w, fast.model.k_a) == (2, 2)
    x = torch.randn(8, 2, 25, generator=torch.Generator().manual_seed(13))
    out, h_n = fast(x)
    assert np.array_equal(out.numpy(), from_file.run(x.numpy()))
    # W2A2 tracks the float network, loosely (a binary network, not the same one)
    with torch.no_grad():
        r_out, _ = ref(x)
    assert 0 < max_err(out.numpy(), r_out.numpy()) < 1.0


def test_drop_in_module_from_a_model_file(tmp_path):
    ref = torch_rnn("lstm", 9, 17, seed=14)
    q = amq.quantize(dict(ref.state_dict()))
    q.save(tmp_path / "m.amq")
    fast = amq.torch.LSTM(str(tmp_path / "m.amq"))
    x = torch.randn(4, 1, 9, generator=torch.Generator().manual_seed(15))
    out, _ = fast(x)
    assert np.array_equal(out.numpy(), q.run(x.numpy()))
    assert "W2A2" in repr(fast)


def test_drop_in_refusals():
    ref = torch_rnn("lstm", 9, 17, seed=16)
    fast = amq.torch.from_module(ref, wbits=None)
    with pytest.raises(amq.ArgumentError, match="input: dtype torch.float64, expected torch.float32"):
        fast(torch.zeros(3, 1, 9, dtype=torch.float64))
    with pytest.raises(amq.ArgumentError, match="input: 4 dimensions"):
        fast(torch.zeros(3, 1, 1, 9))
    with pytest.raises(amq.ArgumentError, match=r"x: shape \(3, 1, 8\).*input_size is 9"):
        fast(torch.zeros(3, 1, 8))
    with pytest.raises(amq.ArgumentError, match="hx: expected a tuple"):
        fast(torch.zeros(3, 1, 9), torch.zeros(1, 1, 17))
    with pytest.raises(amq.ArgumentError, match=r"h0: shape \(1, 2, 17\).*batch is 1"):
        fast(torch.zeros(3, 1, 9), (torch.zeros(1, 2, 17), torch.zeros(1, 1, 17)))
    with pytest.raises(amq.ArgumentError, match="arch 'lstm', amq.torch.GRU expects 'gru'"):
        amq.torch.GRU(fast.model)
    with pytest.raises(ValueError, match="nn.LSTM/nn.GRU"):
        amq.torch.from_module(torch.nn.Linear(3, 4))
