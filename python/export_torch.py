#!/usr/bin/python3
"""Export PyTorch LSTM/GRU weights to amq's float-model file (docs/MODEL_FORMAT.md).

The file is a safetensors container written by hand (numpy + json only):
an 8-byte little-endian header size N, N bytes of JSON header padded with spaces
to a multiple of 8, then the raw little-endian tensor bytes, contiguous in the
order written.

As a module:  save_safetensors, load_safetensors, export_rnn.
As a script:  see `/usr/bin/python3 python/export_torch.py --help`.
"""

import argparse
import json
import re
import struct
import sys

import numpy as np

# safetensors dtype name <-> numpy dtype (little-endian).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
MAX_HEADER = 100 * 1000 * 1000  # header size limit of the safetensors rules
FORMAT_KEYS = ("format", "format_version", "arch", "layers", "input_size", "hidden_size",
               "vocab_size", "vocab", "tied", "bidirectional", "proj_size")


def _dtype_name(array, name):
    for key, dt in DTYPES.items():
        if array.dtype.kind == dt.kind and array.dtype.itemsize == dt.itemsize:
            return key
    raise ValueError(f"tensor '{name}': dtype {array.dtype} has no safetensors equivalent")


def save_safetensors(path, tensors, metadata=None):
    """Write `tensors` (name -> numpy array) and `metadata` (str -> str) to `path`."""
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{path}: metadata '{key}' must map a string to a string, got {value!r}")
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, array in tensors.items():
        if name == "__metadata__":
            raise ValueError(f"{path}: '__metadata__' is not a valid tensor name")
        array = np.asarray(array)
        dtype = _dtype_name(array, name)
        blob = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    """Read a safetensors file; return (tensors: name -> numpy array, metadata: dict).

    Checks the safetensors rules listed in docs/MODEL_FORMAT.md and raises ValueError
    naming the file and tensor on any violation.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: file of {len(data)} bytes is too short for a header size")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER or 8 + size > len(data):
        raise ValueError(f"{path}: header size {size} exceeds the limit or the file size {len(data)}")
    def no_duplicates(pairs):
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: duplicate names in the header")
        return dict(pairs)

    try:
        header = json.loads(data[8:8 + size].decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    body = memoryview(data)[8 + size:]
    tensors, spans = {}, []
    for name, info in header.items():
        where = f"{path}: tensor '{name}'"
        if not isinstance(info, dict) or info.get("dtype") not in DTYPES:
            raise ValueError(f"{where}: unknown dtype {info.get('dtype') if isinstance(info, dict) else info!r}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(body)):
            raise ValueError(f"{where}: data_offsets {offsets!r} not within the data section of {len(body)} bytes")
        dtype = DTYPES[info["dtype"]]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offsets[1] - offsets[0] != expected:
            raise ValueError(f"{where}: data_offsets {offsets} hold {offsets[1] - offsets[0]} bytes,"
                             f" expected {expected} for {info['dtype']} {shape}")
        spans.append((offsets[0], offsets[1], name))
        tensors[name] = np.frombuffer(body[offsets[0]:offsets[1]], dtype=dtype).reshape(shape).copy()
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"{path}: tensors '{a}' and '{b}' overlap")
    return tensors, metadata


def export_rnn(path, rnn, embedding=None, decoder=None, vocab=None, tied=False, extra_metadata=None):
    """Write an nn.LSTM / nn.GRU (and, for a language model, its embedding and decoder)
    as an amq float model (docs/MODEL_FORMAT.md). Weights are stored as F32 under the
    state_dict's names; every option of the module is kept (bias, bidirectional: the
    *_reverse tensors, proj_size: weight_hr_lL).

    A language model is an `embedding` with a `decoder` (nn.Linear, h_size -> vocab) or,
    when `tied`, with the decoder reusing embedding.weight (the decoder, if given, may
    then only add its bias). `vocab` lists the words in id order. `extra_metadata` adds
    string-valued keys (e.g. perplexity_test). Raises ValueError for what the format
    cannot hold.
    """
    import torch.nn as nn

    if isinstance(rnn, nn.LSTM):
        arch = "lstm"
    elif isinstance(rnn, nn.GRU):
        arch = "gru"
    else:
        raise ValueError(f"{path}: rnn must be an nn.LSTM or nn.GRU, got {type(rnn).__name__}")
    proj_size = getattr(rnn, "proj_size", 0)
    h_size = proj_size or rnn.hidden_size
    if rnn.bidirectional and embedding is not None:
        raise ValueError(f"{path}: a bidirectional language model is not supported by amq"
                         " (a language model runs step by step)")

    def f32(t):
        return t.detach().cpu().float().numpy()

    tensors = {name: f32(t) for name, t in rnn.state_dict().items()}
    meta = {"format": "amq-float", "format_version": "1", "arch": arch,
            "layers": str(rnn.num_layers), "input_size": str(rnn.input_size),
            "hidden_size": str(rnn.hidden_size)}
    if rnn.bidirectional:
        meta["bidirectional"] = "true"
    if proj_size:
        meta["proj_size"] = str(proj_size)

    if embedding is None:
        if decoder is not None or vocab is not None or tied:
            raise ValueError(f"{path}: decoder, vocab or tied given without an embedding")
    else:
        vocab_size, emb_dim = embedding.weight.shape
        if emb_dim != rnn.input_size:
            raise ValueError(f"{path}: embedding width {emb_dim} != rnn input_size {rnn.input_size}")
        tensors["embedding.weight"] = f32(embedding.weight)
        if decoder is None and not tied:
            raise ValueError(f"{path}: a language model needs a decoder (or tied=True)")
        if decoder is not None:
            shape = tuple(decoder.weight.shape)
            if shape != (vocab_size, h_size):
                raise ValueError(f"{path}: decoder.weight shape {shape} != (vocab_size, h_size)"
                                 f" = {(vocab_size, h_size)}")
        if tied:
            if rnn.input_size != h_size:
                raise ValueError(f"{path}: tied weights need input_size == h_size (hidden_size,"
                                 f" or proj_size), got {rnn.input_size} and {h_size}")
            if decoder is not None and not np.array_equal(f32(decoder.weight), tensors["embedding.weight"]):
                raise ValueError(f"{path}: tied=True but decoder.weight differs from embedding.weight")
        elif decoder is not None:
            tensors["decoder.weight"] = f32(decoder.weight)
        if decoder is not None and decoder.bias is not None:
            tensors["decoder.bias"] = f32(decoder.bias)
        meta["vocab_size"] = str(vocab_size)
        meta["tied"] = "true" if tied else "false"
        if vocab is not None:
            vocab = list(vocab)
            if len(vocab) != vocab_size:
                raise ValueError(f"{path}: vocab has {len(vocab)} words, the embedding {vocab_size} rows")
            for i, word in enumerate(vocab):
                if not isinstance(word, str) or "\n" in word:
                    raise ValueError(f"{path}: vocab word {i} ({word!r}) is not a string without '\\n'")
            meta["vocab"] = "\n".join(vocab)

    for key, value in (extra_metadata or {}).items():
        if key in FORMAT_KEYS:
            raise ValueError(f"{path}: extra metadata key '{key}' is reserved by the format")
        meta[str(key)] = str(value)
    save_safetensors(path, tensors, meta)


# ---------------------------------------------------------------- checkpoints

RNN_KEY = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")
EMBEDDING_NAMES = ("encoder", "embedding", "embeddings", "embed", "emb", "word_embeddings")
DECODER_NAMES = ("decoder", "fc", "linear", "out", "output", "proj", "head", "lm_head")


def modules_from_module(model):
    """Find the one nn.LSTM/GRU, nn.Embedding and nn.Linear of `model`.
    Returns (rnn, embedding or None, decoder or None, tied)."""
    import torch.nn as nn

    def only(kind, label, required):
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, kind)]
        if len(found) > 1:
            raise ValueError(f"checkpoint has {len(found)} {label} modules"
                             f" ({', '.join(n or '<root>' for n, _ in found)}), expected one")
        if not found and required:
            raise ValueError(f"checkpoint has no {label} module")
        return found[0][1] if found else None

    rnn = only((nn.LSTM, nn.GRU), "nn.LSTM/nn.GRU", True)
    embedding = only(nn.Embedding, "nn.Embedding", False)
    decoder = only(nn.Linear, "nn.Linear", False)
    tied = embedding is not None and decoder is not None and decoder.weight is embedding.weight
    return rnn, embedding, decoder, tied


def modules_from_state_dict(state, embedding_key=None, decoder_key=None):
    """Rebuild nn modules from a bare state_dict whose keys may carry a prefix
    (e.g. rnn.weight_ih_l0, encoder.weight, decoder.weight, decoder.bias).
    Returns (rnn, embedding or None, decoder or None, tied, ignored keys)."""
    import torch
    import torch.nn as nn

    roots = [k for k in state if k.endswith("weight_ih_l0")]
    if len(roots) != 1:
        raise ValueError(f"state_dict must hold exactly one '*weight_ih_l0' key, found {roots or 'none'}")
    prefix = roots[0][:-len("weight_ih_l0")]
    rnn_state = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix) and RNN_KEY.match(k[len(prefix):])}
    w_ih, w_hh = rnn_state["weight_ih_l0"], rnn_state.get("weight_hh_l0")
    if w_hh is None:
        raise ValueError(f"state_dict has '{prefix}weight_ih_l0' but no '{prefix}weight_hh_l0'")
    # A projected LSTM: weight_hr_l0 [proj_size, hidden], weight_hh_l0 [4 x hidden, proj_size].
    w_hr = rnn_state.get("weight_hr_l0")
    hidden = w_hr.shape[1] if w_hr is not None else w_hh.shape[1]
    gates = w_hh.shape[0] // hidden if hidden else 0
    if gates not in (3, 4) or w_hh.shape[0] != gates * hidden:
        raise ValueError(f"state_dict key '{prefix}weight_hh_l0': shape {tuple(w_hh.shape)} is neither"
                         f" [4 x hidden, hidden] (LSTM) nor [3 x hidden, hidden] (GRU)")
    layers = sum(1 for k in rnn_state if re.match(r"weight_ih_l\d+$", k))
    kind = nn.LSTM if gates == 4 else nn.GRU
    options = {"bias": "bias_ih_l0" in rnn_state, "bidirectional": "weight_ih_l0_reverse" in rnn_state}
    if w_hr is not None:
        if kind is not nn.LSTM:
            raise ValueError(f"state_dict key '{prefix}weight_hr_l0': a projection in a GRU")
        options["proj_size"] = w_hr.shape[0]
    try:
        rnn = kind(w_ih.shape[1], hidden, layers, **options)
    except ValueError as e:
        raise ValueError(f"state_dict keys '{prefix}*' do not form a {kind.__name__}: {e}") from None
    try:
        rnn.load_state_dict(rnn_state)
    except RuntimeError as e:
        raise ValueError(f"state_dict keys '{prefix}*' do not form a {kind.__name__}: {e}") from None

    rest = {k: v for k, v in state.items() if not (k.startswith(prefix) and k[len(prefix):] in rnn_state)}

    def pick(explicit, names, label):
        if explicit:
            if explicit not in rest:
                raise ValueError(f"state_dict has no key '{explicit}' for the {label}")
            return explicit
        found = [k for k in rest if k.endswith(".weight") and k[:-7].split(".")[-1] in names]
        if len(found) > 1:
            raise ValueError(f"state_dict has several {label} candidates {found}; choose one with --{label}-key")
        return found[0] if found else None

    emb_key = pick(embedding_key, EMBEDDING_NAMES, "embedding")
    dec_key = pick(decoder_key, DECODER_NAMES, "decoder")
    embedding = decoder = None
    if emb_key:
        embedding = nn.Embedding(*rest[emb_key].shape)
        embedding.weight.data.copy_(rest[emb_key])
    tied = False
    if dec_key:
        bias_key = dec_key[:-len("weight")] + "bias"
        w = rest[dec_key]
        decoder = nn.Linear(w.shape[1], w.shape[0], bias=bias_key in rest)
        decoder.weight.data.copy_(w)
        if decoder.bias is not None:
            decoder.bias.data.copy_(rest[bias_key])
        tied = embedding is not None and w.shape == embedding.weight.shape and torch.equal(w, embedding.weight)
    used = {emb_key, dec_key, dec_key and dec_key[:-len("weight")] + "bias"}
    ignored = [k for k in rest if k not in used]
    return rnn, embedding, decoder, tied, ignored


def export_checkpoint(checkpoint, out, vocab=None, embedding_key=None, decoder_key=None):
    """Load a torch.save'd nn.Module or state_dict and export it to `out`."""
    import torch
    import torch.nn as nn

    obj = torch.load(checkpoint, map_location="cpu")
    if isinstance(obj, nn.Module):
        rnn, embedding, decoder, tied = modules_from_module(obj)
        ignored = []
    elif isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ValueError(f"{checkpoint}: not a state_dict (some values are not tensors)")
        rnn, embedding, decoder, tied, ignored = modules_from_state_dict(obj, embedding_key, decoder_key)
    else:
        raise ValueError(f"{checkpoint}: holds a {type(obj).__name__}, expected an nn.Module or a state_dict")
    if ignored:
        print(f"{checkpoint}: ignored keys: {', '.join(ignored)}", file=sys.stderr)
    export_rnn(out, rnn, embedding, decoder, vocab, tied)
    return rnn, embedding, decoder, tied


# ---------------------------------------------------------------- random models

def random_model(arch, layers, input_size, hidden_size, bias=True, seed=0,
                 vocab_size=None, tied=False, bidirectional=False, proj_size=0):
    """A seeded random nn.LSTM/GRU (PyTorch's default uniform init), with an embedding
    and decoder when `vocab_size` is given. Returns (rnn, embedding, decoder)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    options = {"bias": bias, "bidirectional": bidirectional}
    if proj_size:
        if arch != "lstm":
            raise ValueError(f"--proj-size is for an LSTM, got {arch}")
        options["proj_size"] = proj_size
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[arch](input_size, hidden_size, layers, **options)
    embedding = decoder = None
    if vocab_size is not None:
        if tied and input_size != hidden_size:
            raise ValueError(f"--tied needs --emb == --hidden-size, got {input_size} and {hidden_size}")
        embedding = nn.Embedding(vocab_size, input_size)
        decoder = nn.Linear(hidden_size, vocab_size)
        if tied:
            decoder.weight = embedding.weight
    return rnn.eval(), embedding, decoder


def random_io(rnn, embedding, decoder, steps, batch, seed, state=False, lengths=False):
    """Inputs and PyTorch outputs for the runner's tests: x/h, or tokens/h/logits for an LM.

    state: random initial states h0 (and c0 for an LSTM) are inputs too; lengths:
    sequence lengths from 1 to steps, unsorted, run as pack_padded_sequence
    (outputs 0 past a length). The final states h_n (and c_n) are written in any case.
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if embedding is None:
            x = torch.randn(steps, batch, rnn.input_size, generator=gen)
            io = {"x": x}
            rows = rnn.num_layers * (2 if rnn.bidirectional else 1)
            h_size = getattr(rnn, "proj_size", 0) or rnn.hidden_size
            hx = None
            if state:
                h0 = torch.randn(rows, batch, h_size, generator=gen)
                io["h0"] = h0
                hx = h0
                if isinstance(rnn, torch.nn.LSTM):
                    io["c0"] = torch.randn(rows, batch, rnn.hidden_size, generator=gen)
                    hx = (h0, io["c0"])
            if lengths:
                # From steps down to 1, spread over the batch, unsorted: [1, steps, ...].
                spread = [steps - (b * (steps - 1)) // max(1, batch - 1) for b in range(batch)]
                lens = torch.tensor(spread[-1:] + spread[:-1], dtype=torch.int64)
                io["lengths"] = lens
                packed = pack_padded_sequence(x, lens, enforce_sorted=False)
                out, final = rnn(packed, hx)
                out, _ = pad_packed_sequence(out, total_length=steps)
            else:
                out, final = rnn(x, hx)
            io["h"] = out
            if isinstance(final, tuple):
                io["h_n"], io["c_n"] = final
            else:
                io["h_n"] = final
            return {k: v.numpy() for k, v in io.items()}
        tokens = torch.randint(0, embedding.num_embeddings, (steps, batch), generator=gen)
        out, _ = rnn(embedding(tokens))
        return {"tokens": tokens.numpy().astype(np.int64), "h": out.numpy(),
                "logits": decoder(out).numpy()}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Export a PyTorch LSTM/GRU (optionally a language model) to amq's float model "
                    "file (safetensors, docs/MODEL_FORMAT.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""modes (exactly one):
  --checkpoint FILE.pt   a torch.save'd nn.Module or state_dict (also {'state_dict': ...}).
      nn.Module: its one nn.LSTM/nn.GRU, and for a language model its one nn.Embedding
        and one nn.Linear (decoder; tied when it shares embedding.weight). The module's
        class must be importable for torch.load to unpickle it.
      state_dict: keys may carry a prefix. The RNN is found from '<prefix>weight_ih_l0'
        (arch from the rows of weight_hh_l0: 4 x hidden = LSTM, 3 x hidden = GRU); the
        embedding is '<x>.weight' with <x> one of encoder, embedding, embeddings, embed,
        emb, word_embeddings; the decoder '<x>.weight' / '<x>.bias' with <x> one of
        decoder, fc, linear, out, output, proj, head, lm_head (or name them with
        --embedding-key / --decoder-key). A decoder weight equal to the embedding
        counts as tied. Other keys are listed on stderr and ignored.
      --vocab-file: the words, one per line in id order, stored in the metadata.
  --random lstm|gru      a random network with PyTorch's default init.
  --random-lm lstm|gru   a random language model: --vocab words "w0".., --emb wide.
  --io FILE              (random modes) also write inputs and PyTorch outputs:
      x F32 [T,B,input_size], h F32 [T,B,directions*h_size] (last layer outputs) and the
      final states h_n F32 [layers*directions,B,h_size], c_n (LSTM) F32
      [layers*directions,B,hidden]; with --state also random h0 (and c0) the run starts
      from, with --lengths random lengths I64 [B] (pack_padded_sequence). For an LM
      tokens I64 [T,B], h, logits F32 [T,B,vocab] (decoder outputs, not log-softmaxed).

examples:
  export_torch.py --checkpoint lm.pt --vocab-file vocab.txt -o lm.safetensors
  export_torch.py --random lstm --layers 2 --input-size 37 --hidden-size 129 --seed 1 \\
      -o m.safetensors --io m.io.safetensors --steps 5 --batch 3
  export_torch.py --random lstm --layers 2 --input-size 13 --hidden-size 21 --proj-size 11 \
      --bidirectional -o m.safetensors --io m.io.safetensors --state --lengths
  export_torch.py --random-lm lstm --vocab 50 --emb 16 --hidden-size 24 -o lm.safetensors""")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--checkpoint", metavar="FILE.pt")
    mode.add_argument("--random", choices=("lstm", "gru"))
    mode.add_argument("--random-lm", choices=("lstm", "gru"))
    parser.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    parser.add_argument("--vocab-file", help="checkpoint mode: words, one per line, in id order")
    parser.add_argument("--embedding-key", help="checkpoint mode: state_dict key of the embedding weight")
    parser.add_argument("--decoder-key", help="checkpoint mode: state_dict key of the decoder weight")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=None, help="random LM: vocabulary size")
    parser.add_argument("--emb", type=int, default=None, help="random LM: embedding width")
    parser.add_argument("--tied", action="store_true", help="random LM: decoder reuses the embedding")
    parser.add_argument("--no-bias", action="store_true")
    parser.add_argument("--bidirectional", action="store_true", help="random modes: two directions")
    parser.add_argument("--proj-size", type=int, default=0, help="random LSTM: projection width")
    parser.add_argument("--state", action="store_true", help="--io: random initial states h0, c0")
    parser.add_argument("--lengths", action="store_true",
                        help="--io: random sequence lengths (pack_padded_sequence)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--io", metavar="OUT.io.safetensors")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=3)
    args = parser.parse_args(argv)

    try:
        if args.checkpoint:
            if args.io:
                parser.error("--io is only for --random / --random-lm")
            vocab = None
            if args.vocab_file:
                with open(args.vocab_file, encoding="utf-8") as f:
                    vocab = f.read().splitlines()
            export_checkpoint(args.checkpoint, args.output, vocab, args.embedding_key, args.decoder_key)
            return 0
        lm = args.random_lm is not None
        width = args.emb if lm else args.input_size
        needed = {"--hidden-size": args.hidden_size, "--emb" if lm else "--input-size": width}
        if lm:
            needed["--vocab"] = args.vocab
        for flag, value in needed.items():
            if value is None or value <= 0:
                parser.error(f"{flag} must be a positive integer")
        if args.layers <= 0 or args.steps <= 0 or args.batch <= 0:
            parser.error("--layers, --steps and --batch must be positive")
        if lm and (args.state or args.lengths):
            parser.error("--state and --lengths are for --random (a model without embedding)")
        rnn, embedding, decoder = random_model(
            args.random_lm or args.random, args.layers, width, args.hidden_size, not args.no_bias,
            args.seed, args.vocab if lm else None, args.tied, args.bidirectional, args.proj_size)
        vocab = [f"w{i}" for i in range(args.vocab)] if lm else None
        export_rnn(args.output, rnn, embedding, decoder, vocab, args.tied,
                   {"random_seed": args.seed})
        if args.io:
            save_safetensors(args.io, random_io(rnn, embedding, decoder, args.steps, args.batch, args.seed,
                                                args.state, args.lengths),
                             {"model": args.output, "seed": str(args.seed)})
    except (ValueError, OSError) as e:
        print(f"export_torch.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
