"""Penn Treebank helpers shared by train_ptb.py and eval_ptb.py: reading the text,
the vocabulary, batching, the language model and its perplexity."""

import math
from collections import Counter

import torch
import torch.nn as nn

DATA = "/work/shared/data/ptb"
EOS, UNK = "<eos>", "<unk>"


def read_words(path):
    """The words of a PTB text file, with <eos> at the end of each line."""
    with open(path, encoding="utf-8") as f:
        return [w for line in f for w in line.split() + [EOS]]


def build_vocab(words):
    """Words sorted by decreasing frequency (ties alphabetically); <unk> and <eos> always in."""
    counts = Counter(words)
    for w in (UNK, EOS):
        counts.setdefault(w, 0)
    return sorted(counts, key=lambda w: (-counts[w], w))


def encode(words, vocab):
    """Word ids as a 1-D LongTensor; words outside `vocab` become <unk>."""
    index = {w: i for i, w in enumerate(vocab)}
    unk = index[UNK]
    return torch.tensor([index.get(w, unk) for w in words], dtype=torch.long)


def batchify(ids, batch):
    """Cut the id stream into `batch` columns: a [T, batch] tensor (the tail is dropped)."""
    steps = len(ids) // batch
    return ids[:steps * batch].view(batch, steps).t().contiguous()


class LanguageModel(nn.Module):
    """Embedding -> dropout -> LSTM/GRU -> dropout -> linear decoder (optionally tied)."""

    def __init__(self, vocab_size, emb, hidden, layers=1, arch="lstm", dropout=0.5, tied=True):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[arch](emb, hidden, layers,
                                                         dropout=dropout if layers > 1 else 0)
        self.decoder = nn.Linear(hidden, vocab_size)
        self.drop = nn.Dropout(dropout)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # N(0, 1) starts at perplexity ~1e5
        nn.init.zeros_(self.decoder.bias)
        if tied:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.drop(self.embedding(tokens)), state)
        return self.decoder(self.drop(out)), state


def detach(state):
    """Cut the graph at a BPTT boundary (LSTM state is a tuple, GRU a tensor)."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@torch.no_grad()
def perplexity(model, data, bptt=35):
    """exp(mean negative log-likelihood) of next-word prediction over a [T, B] id tensor,
    carrying the hidden state across chunks of `bptt` steps."""
    model.eval()
    total, count, state = 0.0, 0, None
    for i in range(0, data.size(0) - 1, bptt):
        n = min(bptt, data.size(0) - 1 - i)
        logits, state = model(data[i:i + n], state)
        total += nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                             data[i + 1:i + 1 + n].reshape(-1), reduction="sum").item()
        count += n * data.size(1)
    return math.exp(total / count)
