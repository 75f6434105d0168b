#!/usr/bin/python3
"""Quantization-aware training (QAT) of a float language model for amq, writing the
.amq file directly.

The forward pass computes what amq's runner computes: every quantized weight
matrix by per-row alternating quantization (amq quantize's algorithm: refined
greedy init by default, T cycles), redone from the float weights at every training
step; the LSTM input x_t, the previous hidden state h_{t-1} and (when the decoder
is quantized) the decoder's input quantized online, per vector, by greedy init and
the runner's T alternating cycles. Gradients pass straight through the quantizers
(the paper's straight-through estimator). The float weights are trained; the file
written holds their quantization (planes and scales), as `amq quantize` would
write it from the trained float weights (with --steps 0: the same planes as `amq
quantize` of the input model). --distill adds the float model's predictions as
soft targets; --eval-amq evaluates a written .amq with this forward pass.

Data: ptb.valid.txt is the only training text shipped, so the model is TRAINED ON
ptb.valid.txt (its last --dev-fraction of lines held out for early stopping and
the learning-rate decay) and tested on ptb.test.txt (batch 1, the state carried over
the whole text, as `amq eval`).
"""

import os

# Threads as in train_ptb.py (set before numpy/torch load).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amq_quant  # noqa: E402
from export_torch import load_safetensors, save_safetensors  # noqa: E402
from eval_ptb import load_language_model  # noqa: E402
from ptb import DATA, batchify, encode, read_words  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACT_METHODS = ("alternating", "greedy", "ternary")


class Spec:
    """How one weight matrix runs: its weight bits and quantizer, and the activation
    quantizer of the vector it multiplies (None in place of a Spec: float)."""

    def __init__(self, k_w, k_a, args, act_method=None, fixed=False):
        self.k_w, self.k_a, self.fixed = k_w, k_a, fixed  # fixed: weights read already quantized
        self.method, self.iters, self.init = args.method, args.iters, args.init
        self.act_method, self.act_iters = act_method or args.act_method, args.act_iters
        if self.act_method == "ternary":
            self.k_a = 2

    def act_key(self):
        return self.k_a, self.act_method

    def weights(self, w):
        """(alpha, planes) of the rows of w."""
        return amq_quant.quantize(w, self.k_w, self.iters, self.method, self.init)

    def fake_weights(self, w):
        if self.fixed:
            return w
        return amq_quant.fake_quant(w, self.k_w, self.iters, self.method, self.init)

    def fake_act(self, x):
        return amq_quant.fake_quant(x, self.k_a, self.act_iters, self.act_method, "greedy")


def operand(spec, h, hq, hq_spec):
    """The vector a matrix with `spec` multiplies: h itself for a float matrix; the
    quantized hq already made (for the recurrence) when its setting is the same;
    else h quantized with the matrix's own setting (as the runner does)."""
    if spec is None:
        return h
    if hq_spec is not None and hq_spec.act_key() == spec.act_key():
        return hq
    return spec.fake_act(h)


class QATLanguageModel(nn.Module):
    """One-layer-or-more LSTM language model (python/ptb.py's LanguageModel, with the
    state_dict names of the model file) run with amq's quantizers."""

    def __init__(self, tensors, meta, specs, dropout):
        super().__init__()
        if meta.get("arch", "lstm") != "lstm":
            raise ValueError("train_qat.py: only LSTM language models are supported "
                             f"(arch = {meta.get('arch')})")
        self.layers = int(meta["layers"])
        self.hidden = int(meta["hidden_size"])
        self.tied = meta.get("tied", "false") == "true"
        self.p = nn.ParameterDict()
        for name, array in tensors.items():
            self.p[name.replace(".", "__")] = nn.Parameter(torch.from_numpy(array.astype(np.float32)))
        self.specs = specs  # name -> Spec or None
        self.drop = nn.Dropout(dropout)

    def param(self, name):
        return self.p[name.replace(".", "__")]

    def decoder_name(self):
        return "embedding.weight" if self.tied else "decoder.weight"

    def weights(self, fake=True):
        """Name -> the matrix the forward pass uses (quantized where specified)."""
        out = {}
        for name, spec in self.specs.items():
            if name == "decoder.weight" and self.tied:
                continue
            w = self.param(name)
            out[name] = spec.fake_weights(w) if spec else w
        return out

    def forward(self, tokens, state, weights):
        """tokens [T, B] -> logits [T, B, V], state ((h, hq) per layer, c per layer)."""
        Tn, B = tokens.shape
        H = self.hidden
        x = self.drop(F.embedding(tokens, weights["embedding.weight"]))
        if state is None:
            state = [(torch.zeros(B, H), torch.zeros(B, H)) for _ in range(self.layers)]
        new_state = []
        h_seq, hq_seq, hq_spec = x, None, None  # the input of layer 0: the embedding rows
        for layer in range(self.layers):
            s_ih = self.specs[f"weight_ih_l{layer}"]
            s_hh = self.specs[f"weight_hh_l{layer}"]
            w_ih, w_hh = weights[f"weight_ih_l{layer}"], weights[f"weight_hh_l{layer}"]
            b_ih = self.p[f"bias_ih_l{layer}"] if f"bias_ih_l{layer}" in self.p else 0
            b_hh = self.p[f"bias_hh_l{layer}"] if f"bias_hh_l{layer}" in self.p else 0
            # All steps' input products at once (x_t does not depend on the recurrence).
            gx = F.linear(operand(s_ih, h_seq, hq_seq, hq_spec), w_ih) + b_ih
            h, c = state[layer]
            hq = s_hh.fake_act(h) if s_hh else h
            hs, hqs = [], []
            for t in range(Tn):
                gates = gx[t] + F.linear(hq, w_hh) + b_hh
                i, f, g, o = gates.chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                hq = s_hh.fake_act(h) if s_hh else h
                hs.append(h)
                hqs.append(hq)
            h_seq, hq_seq, hq_spec = torch.stack(hs), torch.stack(hqs), s_hh
            new_state.append((h, c))
        dec_in = operand(self.specs[self.decoder_name()], h_seq, hq_seq, hq_spec)
        bias = self.p["decoder__bias"] if "decoder__bias" in self.p else None
        logits = F.linear(self.drop(dec_in), weights[self.decoder_name()], bias)
        return logits, new_state


def detach(state):
    return [(h.detach(), c.detach()) for h, c in state]


@torch.no_grad()
def perplexity(model, data, bptt=35, limit=0):
    """exp(mean NLL) of next-word prediction over a [T, 1] id tensor, the state carried
    across chunks (as `amq eval`); `limit` > 0: only the first `limit` predictions."""
    model.eval()
    weights = model.weights()
    steps = data.size(0) - 1 if not limit else min(limit, data.size(0) - 1)
    total, state = 0.0, None
    for i in range(0, steps, bptt):
        n = min(bptt, steps - i)
        logits, state = model(data[i:i + n], state, weights)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)).double(),
                                 data[i + 1:i + 1 + n].reshape(-1), reduction="sum").item()
    return math.exp(total / steps)


def parse_bits(text, what):
    try:
        w, a = text.lower().split("x")
        w, a = int(w), int(a)
    except ValueError:
        raise SystemExit(f"train_qat.py: {what} '{text}', expected WxA (e.g. 2x2)") from None
    for v in (w, a):
        if not 1 <= v <= 4:
            raise SystemExit(f"train_qat.py: {what} '{text}': bits {v} outside 1..4")
    return w, a


def build_specs(tensors, meta, args):
    """Name -> Spec or None for every weight matrix of the model."""
    layers = int(meta["layers"])
    names = [f"weight_{p}_l{i}" for i in range(layers) for p in ("ih", "hh")]
    lm = ["embedding.weight"] + (["decoder.weight"] if "decoder.weight" in tensors else [])
    specs = {n: Spec(args.wbits, args.abits, args) for n in names}
    for n in lm:
        specs[n] = Spec(args.wbits, args.abits, args) if args.lm_parts == "quantized" else None
    for item in args.bits_for:
        name, _, bits = item.partition("=")
        if name not in specs:
            raise SystemExit(f"train_qat.py: --bits-for {item}: the model has no matrix '{name}' "
                             f"(it has {', '.join(specs)}"
                             f"{'; tied: the decoder is embedding.weight' if 'decoder.weight' not in specs else ''})")
        bits, _, act = bits.partition(":")
        if act and act not in ACT_METHODS:
            raise SystemExit(f"train_qat.py: --bits-for {item}: activation method '{act}', "
                             f"expected one of {', '.join(ACT_METHODS)}")
        specs[name] = Spec(*parse_bits(bits, f"--bits-for {item}: bits"), args, act or None)
    if args.method == "ternary" and any(s and s.k_w != 2 for s in specs.values()):
        raise SystemExit("train_qat.py: --method ternary needs 2 weight bits")
    return specs


def write_amq(path, model, meta, specs, args, extra):
    """The .amq file (docs/MODEL_FORMAT.md) of the model's current float weights."""
    tensors = {}
    layers = int(meta["layers"])
    order = []
    for i in range(layers):
        order += [f"weight_ih_l{i}", f"weight_hh_l{i}", f"bias_ih_l{i}", f"bias_hh_l{i}"]
    order += ["embedding.weight", "decoder.weight", "decoder.bias"]
    for name in order:
        key = name.replace(".", "__")
        if key not in model.p:
            continue
        w = model.p[key].detach()
        spec = specs.get(name)
        if spec is None:
            tensors[name] = w.numpy()
            continue
        alpha, bits = spec.weights(w)
        tensors[name + ".planes"] = amq_quant.pack_planes(bits)
        tensors[name + ".alpha"] = alpha.float().numpy()
    rnn = Spec(args.wbits, args.abits, args)  # the model-wide bits
    out = {key: meta[key] for key in ("arch", "layers", "input_size", "hidden_size", "vocab_size",
                                      "tied", "vocab") if key in meta}
    out = {"format": "amq", "format_version": "1", **out,
           "k_w": str(rnn.k_w), "k_a": str(rnn.k_a), "method": args.method,
           "iters": str(args.iters if args.method == "alternating" else 0),
           "act_method": args.act_method,
           "act_iters": str(args.act_iters if args.act_method == "alternating" else 0)}
    if args.method == "alternating":
        out["alternating_init"] = args.init
    differ = {name: {"k_w": spec.k_w, "k_a": spec.k_a, "act_method": spec.act_method}
              for name, spec in specs.items()
              if spec and (name != "decoder.weight" or not model.tied)
              and (spec.k_w, spec.k_a, spec.act_method) != (rnn.k_w, rnn.k_a, rnn.act_method)}
    if differ:
        out["matrix_bits"] = json.dumps(differ, separators=(",", ":"))
    keep = {k: v for k, v in meta.items()
            if k not in out and k not in ("format", "format_version", "perplexity_test", "training")}
    out.update(keep)
    out.update(extra)
    save_safetensors(path, tensors, out)


def load_amq(path, args):
    """An .amq file as (float tensors with every quantized matrix dequantized, its
    metadata as a float model's, specs whose weights stay as read): the script's
    own evaluation of a written file."""
    tensors, meta = load_safetensors(path)
    if meta.get("format") != "amq":
        sys.exit(f"train_qat.py: {path} is not an .amq file (metadata format = {meta.get('format')!r})")
    per = json.loads(meta.get("matrix_bits", "{}"))
    args.act_iters = int(meta.get("act_iters", "2"))
    out, specs = {}, {}
    for name, array in tensors.items():
        if name.endswith(".alpha"):
            continue
        if not name.endswith(".planes"):
            out[name] = array
            continue
        base = name[:-len(".planes")]
        k, rows, words = array.shape
        cols = int(meta["input_size" if base in ("weight_ih_l0", "embedding.weight") else "hidden_size"])
        bits = np.unpackbits(array.view(np.uint8).reshape(k, rows, words * 8), axis=-1,
                             bitorder="little")[:, :, :cols].astype(bool)
        alpha = torch.from_numpy(tensors[base + ".alpha"].astype(np.float64))
        out[base] = amq_quant.dequantize(alpha, [torch.from_numpy(b) for b in bits]).numpy()
        entry = per.get(base, {})
        specs[base] = Spec(k, entry.get("k_a", int(meta["k_a"])), args,
                           entry.get("act_method", meta["act_method"]), fixed=True)
    for name in ("embedding.weight", "decoder.weight"):
        if name in out and name not in specs:
            specs[name] = None
    return out, meta, specs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="input", default=os.path.join(ROOT, "models", "ptb_lstm300.safetensors"),
                        help="float language model (amq-float safetensors)")
    parser.add_argument("-o", "--out", help=".amq file to write")
    parser.add_argument("--eval-amq", metavar="FILE",
                        help="only evaluate an .amq file (as written by this script or amq quantize) "
                             "on --test with this script's forward pass")
    parser.add_argument("--wbits", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--abits", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--method", choices=("alternating", "greedy", "ternary"), default="alternating",
                        help="weight quantizer (default alternating)")
    parser.add_argument("--iters", type=int, default=2, help="alternating cycles T for the weights")
    parser.add_argument("--init", choices=("refined", "greedy"), default="refined",
                        help="alternating init of the weights (amq quantize's default: refined)")
    parser.add_argument("--act-method", choices=ACT_METHODS, default="alternating")
    parser.add_argument("--act-iters", type=int, default=2, choices=range(0, 4),
                        help="activation cycles T of the runner (default 2)")
    parser.add_argument("--lm-parts", choices=("float", "quantized"), default="float",
                        help="quantize the embedding and decoder too (default float)")
    parser.add_argument("--bits-for", action="append", default=[], metavar="NAME=WxA[:ACT_METHOD]",
                        help="bits (and activation quantizer) of one matrix, e.g. embedding.weight=4x4 "
                             "or weight_hh_l0=2x2:ternary; repeatable")
    parser.add_argument("--train", default=os.path.join(DATA, "ptb.valid.txt"))
    parser.add_argument("--test", default=os.path.join(DATA, "ptb.test.txt"))
    parser.add_argument("--dev-fraction", type=float, default=0.05)
    parser.add_argument("--eval-every", type=int, default=0,
                        help="training steps between dev evaluations (default: one epoch)")
    parser.add_argument("--distill", type=float, default=0.0,
                        help="weight of the KL divergence to the float model's predictions in the "
                             "loss (0: labels only, 1: the float model's predictions only)")
    parser.add_argument("--steps", type=int, default=-1,
                        help="stop after this many training steps (0: no training, PTQ only)")
    parser.add_argument("--minutes", type=float, default=12, help="wall-time budget for training")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=None, help="default 2 (sgd) or 1e-3 (adam)")
    parser.add_argument("--decay", type=float, default=4, help="divide the lr when dev perplexity rises")
    parser.add_argument("--patience", type=int, default=2, help="stop after this many decays without gain")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--eval-limit", type=int, default=0,
                        help="evaluate on only the first N test predictions (0: all)")
    parser.add_argument("--no-eval", action="store_true", help="skip the test evaluation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.act_method == "ternary":
        args.abits = 2
    if args.method == "ternary" and args.wbits != 2:
        parser.error("--method ternary needs --wbits 2")
    lr = args.lr or (2.0 if args.optimizer == "sgd" else 1e-3)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.time()

    if args.eval_amq:
        tensors, meta, specs = load_amq(args.eval_amq, args)
        model = QATLanguageModel(tensors, meta, specs, 0.0)
        test = batchify(encode(read_words(args.test), meta["vocab"].split("\n")), 1)
        t0 = time.time()
        ppl = perplexity(model, test, args.bptt, args.eval_limit)
        steps = min(args.eval_limit or test.size(0) - 1, test.size(0) - 1)
        print(f"{args.eval_amq}: test ppl {ppl:.2f} over {steps} predictions of "
              f"{os.path.basename(args.test)} ({time.time() - t0:.0f} s)", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"test_perplexity": ppl, "test_predictions": steps}, f)
        return 0
    if not args.out:
        parser.error("-o/--out is required (unless --eval-amq)")
    tensors, meta = load_safetensors(args.input)
    if meta.get("format", "amq-float") != "amq-float" or "vocab" not in meta:
        sys.exit(f"train_qat.py: {args.input} is not a float language model with a vocabulary")
    vocab = meta["vocab"].split("\n")
    specs = build_specs(tensors, meta, args)
    model = QATLanguageModel(tensors, meta, specs, args.dropout)

    words = read_words(args.train)
    eos = [i for i, w in enumerate(words) if w == "<eos>"]
    cut = eos[int(len(eos) * (1 - args.dev_fraction)) - 1] + 1 if args.dev_fraction > 0 else len(words)
    train = batchify(encode(words[:cut], vocab), args.batch)
    dev = batchify(encode(words[cut:], vocab), 1) if cut < len(words) else None
    test = batchify(encode(read_words(args.test), vocab), 1)
    print(f"trained on {os.path.basename(args.train)} ({cut} tokens, {len(words) - cut} held out as dev), "
          f"tested on {os.path.basename(args.test)}", flush=True)

    opt = (torch.optim.SGD if args.optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    teacher = None
    if args.distill > 0:  # the float model's predictions as soft targets
        teacher = load_language_model(args.input)[0]
    chunks = list(range(0, train.size(0) - 1, args.bptt))
    eval_every = args.eval_every or len(chunks)
    step, pos, decays = 0, 0, 0
    state = teacher_state = None
    best_dev = perplexity(model, dev, args.bptt) if dev is not None else float("inf")
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    print(f"before training: dev ppl {best_dev:.2f}", flush=True)
    budget = args.minutes * 60
    while args.steps != 0:
        t0, total, count = time.time(), 0.0, 0
        model.train()
        for _ in range(eval_every):  # a round of training steps, then the dev set
            if step == args.steps or time.time() - start > budget:
                break
            if pos == len(chunks):  # a new epoch: the state starts from zero again
                pos, state, teacher_state = 0, None, None
            i = chunks[pos]
            pos += 1
            n = min(args.bptt, train.size(0) - 1 - i)
            state = detach(state) if state is not None else None
            logits, state = model(train[i:i + n], state, model.weights())
            logits = logits.view(-1, logits.size(-1))
            loss = F.cross_entropy(logits, train[i + 1:i + 1 + n].reshape(-1))
            total += loss.item() * n
            if teacher is not None:
                with torch.no_grad():
                    soft, teacher_state = teacher(train[i:i + n], teacher_state)
                kl = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(soft.view(-1, soft.size(-1)), 1),
                              log_target=True, reduction="batchmean")
                loss = (1 - args.distill) * loss + args.distill * kl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            count += n
            step += 1
        if count == 0:
            break
        dev_ppl = perplexity(model, dev, args.bptt) if dev is not None else float("nan")
        print(f"step {step:5d} (epoch {step / len(chunks):5.2f})  lr {opt.param_groups[0]['lr']:.4g}  "
              f"train ppl {math.exp(total / count):8.2f}  dev ppl {dev_ppl:8.2f}  "
              f"{time.time() - t0:5.0f} s  {time.time() - start:6.0f} s", flush=True)
        if dev is None or dev_ppl < best_dev:
            best_dev = dev_ppl
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            decays += 1
            for group in opt.param_groups:
                group["lr"] /= args.decay
            if decays > args.patience:
                break
    model.load_state_dict(best)
    train_minutes = (time.time() - start) / 60

    epoch = step / len(chunks)
    figures = {"steps": step, "epochs": epoch, "dev_perplexity": best_dev, "train_minutes": train_minutes}
    extra = {"qat": f"train_qat.py: {step} steps ({epoch:.2f} epochs) on {os.path.basename(args.train)} "
                    f"in {train_minutes:.1f} min, {args.optimizer} lr {lr:g} dropout {args.dropout:g} "
                    f"bptt {args.bptt} batch {args.batch} distill {args.distill:g}, from {os.path.basename(args.input)}"}
    write_amq(args.out, model, meta, specs, args, extra)  # kept even if the evaluation is cut off
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) after {train_minutes:.1f} min", flush=True)
    if not args.no_eval:
        t0 = time.time()
        ppl = perplexity(model, test, args.bptt, args.eval_limit)
        figures["test_perplexity"] = ppl
        figures["test_predictions"] = min(args.eval_limit or test.size(0) - 1, test.size(0) - 1)
        figures["eval_seconds"] = time.time() - t0
        print(f"test ppl {ppl:.2f} over {figures['test_predictions']} predictions "
              f"({figures['eval_seconds']:.0f} s)", flush=True)
        if not args.eval_limit:
            extra["perplexity_test"] = f"{ppl:.2f}"
            write_amq(args.out, model, meta, specs, args, extra)
    print(f"total {(time.time() - start) / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
