#!/usr/bin/python3
"""Test perplexity of an exported float language model (amq-float safetensors file) on
ptb.test.txt, computed with torch from the file alone, to verify the export.

The model is rebuilt from the file's metadata and tensors; test words outside its
vocabulary become <unk>; batch 1, the hidden state carried over the whole text.
When the file records perplexity_test, the two figures must agree to 0.01 or the
script exits with status 1.
"""

import os

# Threads as in train_ptb.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import load_safetensors  # noqa: E402
from ptb import DATA, LanguageModel, batchify, encode, perplexity, read_words  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_language_model(path):
    """Rebuild a LanguageModel (eval mode) and its vocabulary from an amq-float file."""
    tensors, meta = load_safetensors(path)
    for key in ("arch", "layers", "input_size", "hidden_size", "vocab", "tied"):
        if key not in meta:
            raise ValueError(f"{path}: metadata '{key}' missing; not a language model")
    vocab = meta["vocab"].split("\n")
    tied = meta["tied"] == "true"
    model = LanguageModel(len(vocab), int(meta["input_size"]), int(meta["hidden_size"]),
                          int(meta["layers"]), meta["arch"], dropout=0.0, tied=tied)
    state = {}
    for name, array in tensors.items():
        owner = "" if name.startswith(("embedding.", "decoder.")) else "rnn."
        state[owner + name] = torch.from_numpy(array)
    if tied:
        state["decoder.weight"] = state["embedding.weight"]
    if "decoder.bias" not in state:
        model.decoder.bias = None
    model.load_state_dict(state)
    return model.eval(), vocab, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "ptb_lstm300.safetensors"))
    parser.add_argument("--test", default=os.path.join(DATA, "ptb.test.txt"))
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, vocab, meta = load_language_model(args.model)
    test = batchify(encode(read_words(args.test), vocab), 1)
    ppl = perplexity(model, test, args.bptt)
    print(f"{args.model}: test perplexity {ppl:.2f} on {os.path.basename(args.test)} "
          f"({test.numel()} tokens, {len(vocab)}-word vocabulary)")
    if "perplexity_test" in meta:
        recorded = float(meta["perplexity_test"])
        print(f"recorded at training: {recorded:.2f}")
        if abs(recorded - ppl) > 0.01:
            print("eval_ptb.py: error: the exported model does not reproduce the recorded perplexity",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
