"""amq's quantizers in torch, vectorized over the rows of a matrix (or the vectors
of a batch): the same algorithms as quantize/src/reference.cpp (weights, `amq
quantize`), generators/quantize_act.h (activations, online in the runner) and the
ternary quantizer of quantize/src/quantizers.cpp, in float64 as they are.

A quantized row x of length n is k scales alpha [k] and k planes of n codes
(+1 or -1), the value sum_i alpha_i b_i. Every function here takes x [R, n] and
returns (alpha [R, k] float64, k planes as bool [R, n] tensors, True = +1).

Alternating: from greedy (or refined greedy) scales, T cycles of
  codes:  the 2^k values sorted (by value, ties: larger s first), each element
          takes the one whose interval between midpoints holds it (its rank is
          the number of midpoints below it, on all rows at once);
  refit:  alpha = G^-1 h, G = B^T B (integers), h = B^T x, solved with the exact
          integer cofactors (adj(G) h / det G); rows whose G is singular keep
          their previous scales.
"""

import torch

F64 = torch.float64


def _minor(G, rows, cols, k, memo):
    """Minor of the integer matrices G[i][j] ([R] int64 tensors) over the rows and
    columns in two bit masks, by Laplace expansion along the first row (as
    reference.cpp's minor_mod)."""
    if rows == 0:
        return 1
    key = (rows, cols)
    if key in memo:
        return memo[key]
    r = (rows & -rows).bit_length() - 1
    d, negate = 0, False
    for c in range(k):
        if cols >> c & 1:
            t = G[r][c] * _minor(G, rows & (rows - 1), cols & ~(1 << c), k, memo)
            d = d - t if negate else d + t
            negate = not negate
    memo[key] = d
    return d


def _pm(b, dtype=F64):
    """Plane bits (bool, True = +1) as +1.0 / -1.0 (torch.where is slow here)."""
    return b.to(dtype).mul_(2).sub_(1)


def refit(x, xsum, bits, alpha):
    """Least-squares scales for fixed planes (bool [R, n] each, True = +1): alpha =
    (B^T B)^-1 B^T x per row, with exact integer cofactors; rows with a singular
    B^T B keep `alpha` [R, k]."""
    k, n = len(bits), x.shape[1]
    h = [(x * _pm(b)).sum(1) for b in bits]
    G = [[None] * k for _ in range(k)]
    for i in range(k):
        G[i][i] = n
        for j in range(i):
            G[i][j] = G[j][i] = n - 2 * (bits[i] ^ bits[j]).sum(1)
    memo = {}
    full = (1 << k) - 1
    det = _minor(G, full, full, k, memo)
    det = torch.full_like(xsum, float(det)) if not torch.is_tensor(det) else det.to(F64)
    out = []
    for i in range(k):
        acc = torch.zeros_like(xsum)
        for j in range(k):
            m = _minor(G, full & ~(1 << j), full & ~(1 << i), k, memo)
            m = m.to(F64) if torch.is_tensor(m) else float(m)
            acc = acc + ((-m) if (i + j) % 2 else m) * h[j]
        out.append(acc / det)
    return torch.where((det != 0).unsqueeze(1), torch.stack(out, 1), alpha)


def assign(x, alpha):
    """Optimal planes for fixed scales: k bool [R, n]."""
    R, k = alpha.shape
    S = 1 << k
    comb = torch.arange(S)
    v = torch.zeros(R, S, dtype=F64)
    for i in range(k):  # summed in the order of the reference
        v = v + alpha[:, i:i + 1] * (((comb >> i) & 1) * 2 - 1).to(F64)
    rev = torch.arange(S - 1, -1, -1)
    values, idx = torch.sort(v[:, rev], dim=1, stable=True)  # ties: larger s first
    order = rev[idx]
    mid = (values[:, :-1] + values[:, 1:]) / 2
    # Rank: the number of midpoints strictly below x (the reference's binary search):
    # counted on small inputs (activations: fewer, cheaper ops), else searched.
    if x.numel() <= 65536:
        rank = (x.unsqueeze(2) > mid.unsqueeze(1)).sum(2)
    else:
        rank = torch.searchsorted(mid.contiguous(), x.contiguous())
    return [((order >> i) & 1).bool().gather(1, rank) for i in range(k)]


def alternating(x, k, T, init="greedy"):
    """Alternating quantization of each row of x [R, n] (any float dtype):
    init 'greedy' (the paper's, and the runner's for activations) or 'refined'
    (`amq quantize`'s default for weights), then T cycles. Returns (alpha [R, k]
    float64, k planes bool [R, n], True = +1)."""
    x = x.detach().to(F64)
    R, n = x.shape
    xsum = x.sum(1)
    alpha = torch.zeros(R, k, dtype=F64)
    bits = []
    r = x
    for i in range(k):
        a = r.abs().sum(1) / n  # mean |r|, sign(0) = +1
        pos = r >= 0
        alpha[:, i] = a
        bits.append(pos)
        if init == "refined":
            alpha[:, :i + 1] = refit(x, xsum, bits, alpha[:, :i + 1])
            r = x
            for j in range(i + 1):  # r - alpha_j b_j, j in order, as the reference
                r = torch.addcmul(r, _pm(bits[j]), alpha[:, j:j + 1], value=-1)
        elif i + 1 < k:
            r = torch.addcmul(r, _pm(pos), a.unsqueeze(1), value=-1)
    for _ in range(T):
        bits = assign(x, alpha)
        alpha = refit(x, xsum, bits, alpha)
    return alpha, bits


def ternary(x):
    """HitNet-style ternary rows (quantizers.cpp's ternary()): threshold 0.7 mean|x|,
    a = mean |x| above it (rounded to float, 0 if none), two planes with scales a/2:
    +a (both +1), 0 (plane 1 +1, plane 2 -1), -a (both -1)."""
    x = x.detach().to(F64)
    mag = x.abs()
    threshold = 0.7 * (mag.sum(1, keepdim=True) / x.shape[1])
    big = mag > threshold
    count = big.sum(1)
    a = ((mag * big).sum(1) / count.clamp(min=1).to(F64)).float().to(F64)  # 0 if none
    up = big & (x > 0)
    return torch.stack([a / 2, a / 2], 1), [~big | up, up]


def quantize(x, k, T, method="alternating", init="greedy"):
    """(alpha, planes) of each row of x by `method`: alternating, greedy (T = 0) or
    ternary."""
    if method == "ternary":
        return ternary(x)
    return alternating(x, k, T if method == "alternating" else 0, init)


def dequantize(alpha, bits, dtype=torch.float32):
    """sum_i alpha_i b_i with the scales rounded to `dtype` first (as stored / used by
    the kernels)."""
    a = alpha.to(dtype)
    out = torch.zeros(bits[0].shape, dtype=dtype)
    for i, b in enumerate(bits):
        out = torch.addcmul(out, _pm(b, dtype), a[:, i:i + 1])
    return out


def fake_quant(x, k, T, method="alternating", init="greedy"):
    """x [..., n] replaced by its quantized rows in the forward pass; the gradient
    passes straight through (d out / d x = identity)."""
    flat = x.reshape(-1, x.shape[-1])
    alpha, bits = quantize(flat, k, T, method, init)
    q = dequantize(alpha, bits, x.dtype).reshape(x.shape)
    return x + (q - x).detach()


def pack_planes(bits):
    """Bit planes U64 [k, rows, words] (numpy) of k bool [R, n] planes: bit c % 64 of
    word c / 64 is column c, 1 = +1, padding bits 0."""
    import numpy as np
    k, (R, n) = len(bits), bits[0].shape
    words = (n + 63) // 64
    planes = torch.zeros(k, R, words * 64, dtype=torch.uint8)
    for i, b in enumerate(bits):
        planes[i, :, :n] = b.to(torch.uint8)
    # little-endian bits in each byte, bytes in order: the u64 words
    packed = np.packbits(planes.numpy().reshape(k, R, words * 8, 8), axis=-1, bitorder="little")
    return packed.reshape(k, R, words * 8).view("<u8").reshape(k, R, words)
