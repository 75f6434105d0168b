"""amq for PyTorch users: quantize an nn.LSTM / nn.GRU in memory and run it as a
drop-in inference module.

    import amq.torch
    fast = amq.torch.from_module(model.lstm, wbits=2, abits=2)   # an amq.torch.LSTM
    output, (h_n, c_n) = fast(x)                                  # as nn.LSTM's forward
    model.lstm = fast                                             # or swap it in

amq.torch.LSTM and amq.torch.GRU take an amq.Model (or a model file) and follow
nn.LSTM / nn.GRU's forward: input [T, B, input_size] ([B, T, input_size] with
batch_first, [T, input_size] unbatched) or a PackedSequence, hx = (h_0, c_0) (GRU:
h_0) of [layers * directions, B, H_out] or None for zeros; they return (output,
(h_n, c_n)) (GRU: (output, h_n)) with PyTorch's shapes, bidirectional outputs
concatenated and proj_size honoured. Inference only: no gradients, float32 CPU
tensors (other dtypes or devices raise amq.ArgumentError, as nn.LSTM refuses a
float64 input for float32 weights). A contiguous time-major input reaches the
kernels without a copy.
"""

import threading

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from . import ArgumentError, Model, _amq, load, quantize
from . import _export_torch

__all__ = ["LSTM", "GRU", "LanguageModel", "from_module", "float_model",
           "float_model_from_state_dict"]


def _label(module):
    return f"<{type(module).__name__} in memory>"


def _from_modules(label, rnn, embedding, decoder, tied, vocab=None):
    tensors, meta = _export_torch.rnn_tensors(label, rnn, embedding, decoder, vocab, tied)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    return Model(_amq.from_tensors(tensors, meta, label))


def float_model(module, vocab=None):
    """The float amq.Model of an nn.LSTM / nn.GRU, or of a module holding one (with,
    for a language model, one nn.Embedding and one nn.Linear decoder, tied when
    it shares the embedding's weight). `vocab`: the words in id order (for
    amq.eval). Raises ValueError naming what the model file cannot hold."""
    rnn, embedding, decoder, tied = _export_torch.modules_from_module(module)
    if embedding is None:
        decoder, tied = None, False  # the RNN alone (e.g. a classifier's head stays torch)
    return _from_modules(_label(module), rnn, embedding, decoder, tied, vocab)


def float_model_from_state_dict(state, vocab=None):
    """The float amq.Model of a state_dict (keys as python/export_torch.py reads
    them: weight_ih_l0 ..., with any prefix; embedding / decoder by name)."""
    rnn, embedding, decoder, tied, _ = _export_torch.modules_from_state_dict(state)
    return _from_modules("<state_dict in memory>", rnn, embedding, decoder, tied, vocab)


def from_module(module, wbits=2, abits=2, method="alternating", batch_first=None, vocab=None,
                **options):
    """Quantizes an nn.LSTM / nn.GRU (or an embedding + RNN + linear language model)
    in memory and returns the drop-in module: amq.torch.LSTM, amq.torch.GRU or
    amq.torch.LanguageModel. wbits=None keeps the weights float (amq's float
    runner). `options` are amq.quantize's (iters, init, range, act_method,
    act_iters, lm_parts, threads). batch_first: default the RNN's own."""
    rnn = _export_torch.modules_from_module(module)[0]
    model = float_model(module, vocab)
    if wbits is not None:
        model = quantize(model, wbits=wbits, abits=abits, method=method, **options)
    if batch_first is None:
        batch_first = rnn.batch_first
    if model.vocab_size:
        return LanguageModel(model, batch_first=batch_first)
    return (LSTM if model.arch == "lstm" else GRU)(model, batch_first=batch_first)


def _check_tensor(x, name, dtype):
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"{name}: got a {type(x).__name__}, expected a torch.Tensor")
    if x.device.type != "cpu":
        raise ArgumentError(f"{name}: a tensor on {x.device}, expected a CPU tensor")
    if x.dtype != dtype:
        raise ArgumentError(f"{name}: dtype {x.dtype}, expected {dtype}")


def _numpy(x):
    """x (contiguous: a no-op when it is already) as a numpy array sharing memory."""
    return x.detach().contiguous().numpy()


class _Base(torch.nn.Module):
    """Holds the amq.Model and one Session per batch size and thread."""

    def __init__(self, model, batch_first=False):
        super().__init__()
        if not isinstance(model, Model):
            model = load(model)
        self.model = model
        self.batch_first = bool(batch_first)
        self.input_size = model.input_size
        self.hidden_size = model.hidden_size
        self.num_layers = model.layers
        self.bias = model.bias
        self.bidirectional = model.bidirectional
        self.proj_size = model.proj_size
        self._local = threading.local()

    def _session(self, batch):
        sessions = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        s = sessions.get(batch)
        if s is None:
            if len(sessions) >= 8:  # many batch sizes: keep the memory bounded
                sessions.clear()
            s = sessions[batch] = self.model.session(batch)
        return s

    def extra_repr(self):
        m = self.model
        bits = f"W{m.k_w}A{m.k_a}" if m.quantized else "float"
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, {bits}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s

    def __getstate__(self):
        raise TypeError(f"amq.torch.{type(self).__name__} cannot be pickled; save its model "
                        f"(module.model.save(path)) and load that")


class _Recurrent(_Base):
    """forward() of amq.torch.LSTM and amq.torch.GRU."""

    _lstm = True

    def __init__(self, model, batch_first=False):
        super().__init__(model, batch_first)
        want = "lstm" if self._lstm else "gru"
        if self.model.arch != want:
            raise ArgumentError(f"{self.model.label}: arch '{self.model.arch}', "
                                f"amq.torch.{type(self).__name__} expects '{want}'")
        if self.model.vocab_size:
            raise ArgumentError(f"{self.model.label} is a language model: use "
                                f"amq.torch.LanguageModel")

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        if packed:
            _check_tensor(input.data, "input", torch.float32)
            x, lengths = pad_packed_sequence(input)  # [T, B, I], original batch order
            lengths = lengths.to(torch.int64)
            unbatched = False
        else:
            _check_tensor(input, "input", torch.float32)
            if input.dim() not in (2, 3):
                raise ArgumentError(f"input: {input.dim()} dimensions {tuple(input.shape)}, "
                                    f"expected 3 (batched) or 2 (unbatched)")
            unbatched = input.dim() == 2
            x = input.unsqueeze(1) if unbatched else (
                input.transpose(0, 1) if self.batch_first else input)
            lengths = None
        h0, c0 = self._split_hx(hx, unbatched)
        s = self._session(x.shape[1])
        s.set_state(h0, c0)
        out = torch.from_numpy(s.run(_numpy(x), None if lengths is None else lengths.numpy()))
        h_n, c_n = (None if a is None else torch.from_numpy(a) for a in s.get_state())
        if packed:
            out = _repack(out, input)
        elif unbatched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1).contiguous()
        return (out, (h_n, c_n)) if self._lstm else (out, h_n)

    def _split_hx(self, hx, unbatched):
        """(h0, c0) as numpy arrays [L*D, B, ...] or None."""
        if hx is None:
            return None, None
        if self._lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ArgumentError("hx: expected a tuple (h_0, c_0) for an LSTM")
            pair = hx
        else:
            pair = (hx, None)
        out = []
        for name, t in zip(("h_0", "c_0"), pair):
            if t is None:
                out.append(None)
                continue
            _check_tensor(t, name, torch.float32)
            if unbatched:
                if t.dim() != 2:
                    raise ArgumentError(f"{name}: {t.dim()} dimensions {tuple(t.shape)}, "
                                        f"expected 2 for an unbatched input")
                t = t.unsqueeze(1)
            out.append(_numpy(t))
        return out[0], out[1]


def _repack(out, like):
    """out [T, B, F] (original batch order, zero past each length) as a
    PackedSequence with the batch_sizes and order of `like`."""
    order = like.sorted_indices
    if order is not None:
        out = out.index_select(1, order)
    sizes = like.batch_sizes.tolist()
    data = torch.cat([out[t, :n] for t, n in enumerate(sizes)])
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


class LSTM(_Recurrent):
    """Drop-in for nn.LSTM (inference): LSTM(model, batch_first=False), model an
    amq.Model or a model file; forward(input, hx=None) -> (output, (h_n, c_n))."""

    _lstm = True


class GRU(_Recurrent):
    """Drop-in for nn.GRU (inference): GRU(model, batch_first=False);
    forward(input, hx=None) -> (output, h_n)."""

    _lstm = False


class LanguageModel(_Base):
    """An embedding + LSTM/GRU + linear decoder language model (an amq.Model with a
    vocabulary): forward(tokens, hx=None) with tokens int64 [T, B] ([B, T] with
    batch_first) -> (logits [T, B, vocab], hx_n), hx_n = (h_n, c_n) for an LSTM and
    h_n for a GRU, as the RNN inside would return."""

    def __init__(self, model, batch_first=False):
        super().__init__(model, batch_first)
        if not self.model.vocab_size:
            raise ArgumentError(f"{self.model.label} is not a language model: use "
                                f"amq.torch.{self.model.arch.upper()}")
        self.vocab_size = self.model.vocab_size

    def forward(self, tokens, hx=None):
        _check_tensor(tokens, "tokens", torch.int64)
        if tokens.dim() != 2:
            raise ArgumentError(f"tokens: {tokens.dim()} dimensions {tuple(tokens.shape)}, "
                                f"expected 2: [T, B] ([B, T] with batch_first)")
        t = tokens.transpose(0, 1) if self.batch_first else tokens
        lstm = self.model.arch == "lstm"
        h0 = c0 = None
        if hx is not None:
            h0, c0 = hx if lstm else (hx, None)
            h0 = None if h0 is None else _numpy(h0)
            c0 = None if c0 is None else _numpy(c0)
        s = self._session(t.shape[1])
        s.set_state(h0, c0)
        _, logits = s.run_tokens(_numpy(t))
        logits = torch.from_numpy(logits)
        h_n, c_n = (None if a is None else torch.from_numpy(a) for a in s.get_state())
        if self.batch_first:
            logits = logits.transpose(0, 1).contiguous()
        return logits, ((h_n, c_n) if lstm else h_n)
