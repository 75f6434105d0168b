#!/usr/bin/python3
"""Train amq's demo model: a word-level LSTM language model on Penn Treebank
(one layer, 300 hidden units, 300-wide embedding tied with the decoder), then
export it with export_torch.export_rnn.

Only ptb.valid.txt and ptb.test.txt are available, so the model is TRAINED ON
ptb.valid.txt (its last --dev-fraction of lines are held out to pick the best
epoch and decay the learning rate) and its perplexity is reported on ptb.test.txt.
The figure is therefore not comparable to published PTB results (trained on the
929k-word train split with a 10k vocabulary).
"""

import os

# Threads on a small, shared machine (set before numpy/torch load): torch's own 2
# OpenMP threads only, no second OpenBLAS pool, and idle threads that sleep instead
# of spinning. Each of these made training 2-4x faster on the 2-core build machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import export_rnn  # noqa: E402
from ptb import DATA, LanguageModel, batchify, build_vocab, detach, encode, perplexity, read_words  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA, help="folder with ptb.valid.txt and ptb.test.txt")
    parser.add_argument("-o", "--output", default=os.path.join(ROOT, "models", "ptb_lstm300.safetensors"))
    parser.add_argument("--minutes", type=float, default=10, help="wall-time budget for training (default 10)")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=300, help="hidden = embedding width (tied)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=None, help="default 20 (sgd) or 0.002 (adam)")
    parser.add_argument("--decay", type=float, default=4, help="divide the lr when dev perplexity rises")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--clip", type=float, default=0.25, help="gradient norm clipping")
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--dev-fraction", type=float, default=0.05,
                        help="last fraction of ptb.valid.txt lines held out for model selection")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    lr = args.lr or (20.0 if args.optimizer == "sgd" else 0.002)

    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    words = read_words(os.path.join(args.data, "ptb.valid.txt"))
    vocab = build_vocab(words)
    eos_positions = [i for i, w in enumerate(words) if w == "<eos>"]
    cut = eos_positions[int(len(eos_positions) * (1 - args.dev_fraction)) - 1] + 1
    train = batchify(encode(words[:cut], vocab), args.batch)
    dev = batchify(encode(words[cut:], vocab), 1)
    test = batchify(encode(read_words(os.path.join(args.data, "ptb.test.txt")), vocab), 1)
    print(f"trained on ptb.valid.txt ({cut} tokens, {len(words) - cut} held out as dev), "
          f"tested on ptb.test.txt ({test.numel()} tokens); vocabulary {len(vocab)} words "
          f"(test words outside it -> <unk>)", flush=True)

    model = LanguageModel(len(vocab), args.hidden, args.hidden, dropout=args.dropout, tied=True)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    start = time.time()
    budget = args.minutes * 60
    best, best_dev, epoch_time = None, float("inf"), 0.0
    for epoch in range(1, args.max_epochs + 1):
        if time.time() - start + epoch_time > budget:
            break
        t0 = time.time()
        model.train()
        total, count, state = 0.0, 0, None
        for i in range(0, train.size(0) - 1, args.bptt):
            n = min(args.bptt, train.size(0) - 1 - i)
            state = detach(state) if state is not None else None
            logits, state = model(train[i:i + n], state)
            loss = loss_fn(logits.view(-1, len(vocab)), train[i + 1:i + 1 + n].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total += loss.item() * n
            count += n
        train_time = time.time() - t0
        dev_ppl, test_ppl = perplexity(model, dev, args.bptt), perplexity(model, test, args.bptt)
        epoch_time = time.time() - t0
        print(f"epoch {epoch:3d}  lr {opt.param_groups[0]['lr']:.4g}  train ppl {np.exp(total / count):8.2f}  "
              f"dev ppl {dev_ppl:8.2f}  test ppl {test_ppl:8.2f}  "
              f"{count * args.batch / train_time:7.0f} tokens/s  {time.time() - start:6.0f} s", flush=True)
        if dev_ppl < best_dev:
            best_dev, best, best_test = dev_ppl, copy.deepcopy(model.state_dict()), test_ppl
        else:
            for group in opt.param_groups:
                group["lr"] /= args.decay
    if best is None:
        sys.exit("train_ptb.py: the time budget allowed no epoch")
    model.load_state_dict(best)
    minutes = (time.time() - start) / 60
    print(f"best dev ppl {best_dev:.2f}, test ppl {best_test:.2f}; {minutes:.1f} min", flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    note = (f"trained on ptb.valid.txt only (no train split; last {args.dev_fraction:.0%} of its lines held out "
            f"to pick the epoch), tested on ptb.test.txt with test words outside the {len(vocab)}-word "
            f"vocabulary mapped to <unk>; batch 1, hidden state carried over the whole test text")
    export_rnn(args.output, model.rnn, model.embedding, model.decoder, vocab, tied=True,
               extra_metadata={"trained_on": "ptb.valid.txt", "perplexity_test": f"{best_test:.2f}",
                               "perplexity_note": note, "seed": str(args.seed),
                               "training": f"{args.optimizer} lr {lr:g} dropout {args.dropout:g} "
                                           f"clip {args.clip:g} bptt {args.bptt} batch {args.batch}, "
                                           f"{minutes:.1f} min on {args.threads} threads"})
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
