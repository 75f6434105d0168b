"""amq: multi-bit quantized LSTM/GRU inference on CPUs, from Python.

    import amq
    model = amq.quantize("lstm.safetensors", wbits=2, abits=2)   # or a state_dict
    h = model.run(x)                  # x [T, B, input_size] float32 (numpy or torch)
    model.save("lstm.amq")
    model = amq.load("lstm.amq")
    s = model.session(batch=1)        # step by step, state kept between calls
    h_t = s.step(x_t)                 # x_t [B, input_size]

For PyTorch modules, see amq.torch (from_module, and the drop-in amq.torch.LSTM /
amq.torch.GRU). Inputs are used without a copy when they are C-contiguous float32
(or int64 tokens) arrays; anything else raises amq.ArgumentError naming what was
expected. The kernels run with the GIL released: sessions in several threads run
at the same time (one thread per session, the model shared). See docs/PYTHON.md.
"""

import numpy as _np

from . import _amq
from ._amq import ArgumentError, Error, FormatError, active_isa, halide_version, set_num_threads

__all__ = ["Model", "Session", "load", "quantize", "eval", "set_num_threads", "active_isa",
           "halide_version", "Error", "FormatError", "ArgumentError"]


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _array(x, name):
    """x as a numpy array sharing its memory (a CPU torch tensor: its numpy view);
    returns (array, was_torch)."""
    if _is_torch(x):
        if x.device.type != "cpu":
            raise ArgumentError(f"{name}: a tensor on {x.device}, expected a CPU tensor")
        return x.detach().numpy(), True
    return x, False


def _out(a, torch_out):
    if not torch_out:
        return a
    import torch
    return torch.from_numpy(a)


class Session:
    """A model's state for `batch` sequences, run step by step or a sequence at a
    time; from Model.session(batch). One thread at a time (another thread's call
    meanwhile raises amq.Error)."""

    def __init__(self, native):
        self._s = native

    @property
    def batch(self):
        return self._s.batch

    def reset(self):
        """h and c of every layer back to zero."""
        self._s.reset()

    def step(self, x):
        """One step: x [batch, input_size] float32 -> h [batch, h_size] (not for a
        bidirectional model: use run())."""
        a, t = _array(x, "x")
        return _out(self._s.step(a), t)

    def step_tokens(self, tokens):
        """One step of a language model: tokens [batch] int64 -> (h, logits [batch, vocab])."""
        a, t = _array(tokens, "tokens")
        h, logits = self._s.step_tokens(a)
        return _out(h, t), _out(logits, t)

    def run(self, x, lengths=None):
        """T steps from the session's state: x [T, batch, input_size] float32 ->
        output [T, batch, output_size] (the last layer's h; both directions of a
        bidirectional model). lengths [batch] int64 (each 1..T) as
        pack_padded_sequence: outputs past a length are 0. The final state stays
        in the session (get_state())."""
        a, t = _array(x, "x")
        if lengths is not None:
            lengths, _ = _array(lengths, "lengths")
        return _out(self._s.run(a, lengths), t)

    def run_tokens(self, tokens):
        """T steps of a language model: tokens [T, batch] int64 -> (h, logits [T, batch, vocab])."""
        a, t = _array(tokens, "tokens")
        h, logits = self._s.run_tokens(a)
        return _out(h, t), _out(logits, t)

    def set_state(self, h0=None, c0=None):
        """h0 [layers*directions, batch, h_size], c0 [layers*directions, batch,
        hidden_size] (LSTM) in PyTorch's layout; None means zeros."""
        h0 = None if h0 is None else _array(h0, "h0")[0]
        c0 = None if c0 is None else _array(c0, "c0")[0]
        self._s.set_state(h0, c0)

    def get_state(self):
        """(h_n, c_n) in PyTorch's layout (c_n is None for a GRU), as numpy arrays."""
        return self._s.get_state()

    def fused(self, call="run", layer=0, direction=0):
        """Whether that layer direction runs its step on a fused step kernel:
        call "run" (the recurrent step of run()) or "step" (step()'s full step
        from x_t, for a layer whose input comes as floats)."""
        return self._s.fused(call, layer, direction)


class Model:
    """A loaded or quantized model (immutable, shared by any number of sessions).
    Metadata as properties: arch, layers, input_size, hidden_size, proj_size,
    bidirectional, directions, h_size, output_size, bias, vocab_size, tied,
    quantized, k_w, k_a, method, iters, act_method, act_iters, vocab, metadata,
    weight_bytes, label."""

    def __init__(self, native):
        self._m = native

    def __repr__(self):
        m = self._m
        bits = f"W{m.k_w}A{m.k_a} {m.method}" if m.quantized else "float"
        extra = (", bidirectional" if m.bidirectional else "") + (
            f", proj_size={m.proj_size}" if m.proj_size else "") + (
            f", vocab_size={m.vocab_size}" if m.vocab_size else "")
        return (f"amq.Model({m.label!r}: {m.arch}, {m.layers} layer(s), input {m.input_size}, "
                f"hidden {m.hidden_size}{extra}, {bits})")

    def save(self, path):
        """Writes the model: an .amq when quantized, else a float .safetensors."""
        self._m.save(str(path))

    def session(self, batch=1, step_kernels="chosen"):
        """A new Session for `batch` sequences (its state starts at zero).

        step_kernels (quantized models): "chosen" runs each layer's step on the
        fused step kernel or on the separate kernels as this build chose for the
        problem (amq tune --steps, docs/TUNING.md); "fused" on the fused kernel
        wherever one is built; "separate" on the separate kernels."""
        return Session(self._m.session(batch, step_kernels))

    def run(self, x, h0=None, c0=None, lengths=None, return_state=False):
        """A whole sequence from a zero (or the given) state.

        x [T, B, input_size] float32 -> output [T, B, output_size]; for a language
        model, tokens [T, B] int64 -> (h, logits [T, B, vocab]). numpy in, numpy
        out; torch in, torch out (sharing memory, no copies). h0 / c0 / lengths as
        in Session.set_state and Session.run. With return_state, returns (result,
        (h_n, c_n)), c_n None for a GRU.
        """
        a, t = _array(x, "x")
        if not hasattr(a, "ndim") or a.ndim < 2:
            raise ArgumentError(f"x: expected an array [T, B, ...], got "
                                f"{getattr(a, 'shape', type(a).__name__)}")
        s = self.session(a.shape[1])
        if h0 is not None or c0 is not None:
            s.set_state(h0, c0)
        if self._m.vocab_size:
            if lengths is not None:
                raise ArgumentError("lengths: not supported for a language model's tokens")
            result = s.run_tokens(x)
        else:
            result = s.run(x, lengths)
        if not return_state:
            return result
        h_n, c_n = s.get_state()
        return result, (_out(h_n, t), None if c_n is None else _out(c_n, t))


def _property(name):
    return property(lambda self: getattr(self._m, name), doc=f"The model's {name}.")


for _name in ("label", "arch", "layers", "input_size", "hidden_size", "proj_size", "bidirectional",
              "directions", "h_size", "output_size", "bias", "vocab_size", "tied", "quantized",
              "k_w", "k_a", "method", "iters", "act_method", "act_iters", "vocab", "metadata",
              "weight_bytes"):
    setattr(Model, _name, _property(_name))


def load(path):
    """Loads an .amq model or a float model (.safetensors state_dict, see
    python/export_torch.py). Raises amq.FormatError naming the file and tensor for a
    malformed file, amq.Error when it cannot be read."""
    return Model(_amq.load(str(path)))


def _float_model(source):
    """A float Model from a path, a Model, a state_dict or an nn.Module."""
    if isinstance(source, Model):
        return source
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return load(source)
    from . import torch as amq_torch
    if isinstance(source, dict):
        return amq_torch.float_model_from_state_dict(source)
    if _is_torch(source) or hasattr(source, "named_modules"):
        return amq_torch.float_model(source)
    raise ArgumentError(f"expected a model path, an amq.Model, a state_dict or an nn.Module, "
                        f"got {type(source).__name__}")


def quantize(source, wbits=2, abits=2, method="alternating", iters=2, init="refined",
             range="row", act_method="alternating", act_iters=2, lm_parts=False, threads=0):
    """Quantizes a float model in memory, as `amq quantize` does; returns a Model
    (save() writes the .amq).

    source: a float model file, a float amq.Model, a PyTorch state_dict (keys as
    python/export_torch.py reads them, e.g. weight_ih_l0 or rnn.weight_ih_l0, plus
    embedding / decoder for a language model) or an nn.Module holding one
    nn.LSTM / nn.GRU. wbits, abits: 1..4; method: alternating, greedy, refined,
    uniform, balanced or ternary; iters: alternating cycles for the weights; init:
    refined or greedy; range: row or tensor (uniform, balanced); act_method,
    act_iters: the runner's online activation quantizer; lm_parts: also quantize
    the embedding and decoder; threads: 0 = all.
    """
    f = _float_model(source)
    return Model(_amq.quantize(f._m, wbits, abits, method, iters, init, range, act_method,
                               act_iters, lm_parts, threads))


def eval(model, text, limit=0):
    """Word-level perplexity of a language model (a Model or a path) on a text file,
    as `amq eval` computes it (words split on spaces, <eos> at each line end,
    unknown words as <unk>, batch 1, the state carried over the whole text).
    Returns {"perplexity", "tokens", "seconds", "tokens_per_second"}."""
    if not isinstance(model, Model):
        model = load(model)
    return _amq.eval(model._m, str(text), int(limit))
