// quantize_act: online k-bit quantization of an activation vector, every step.
//
// Greedy init, then T alternating cycles {optimal codes for fixed scales by
// comparison with the midpoints of the sorted 2^k values; least-squares refit of
// the scales}, exactly as amq::ref::alternating (quantize/reference.h), whose
// conventions (double sums, tie breaks, singular fallback) it follows.
//
// Passes over x (each one vectorized loop; the sums in f64, one partial sum per
// lane over the blocks of `lanes` elements, the last partial block masked to
// e < n, then the lanes added as a tree):
//   greedy i = 0..k-1   sum |r_i| (and sum x with i = 0), where |r_0| = |x| and
//                       |r_{i+1}| = ||r_i| - alpha_i| (the same rounding as
//                       r_{i+1} = r_i - alpha_i sign(r_i) of the reference)
//   cycle c = 0..T-1    codes by compare-and-select against the 2^k - 1 sorted
//                       midpoints, and in the same pass h'_i = sum over bit i set
//                       of x and d_ij = #(bit i != bit j); then h_i = 2 h'_i -
//                       sum x, G_ij = n - 2 d_ij and the k x k solve (scalars:
//                       for k <= 2 the reference's adjugate with its exact
//                       integer determinant, else Gaussian elimination). The
//                       last cycle's codes are a pass of their own, stored as
//                       bytes, which its sums and the packing both read
//   pack                per word of 64 elements: the last cycle's codes (the
//                       greedy signs in f64 when T = 0, computed there), then
//                       the 8 bytes of each plane as sums of (bit << b) over 8
//                       lanes
// Between the passes of a cycle, its levels (the sorted values' midpoints and
// the combination at each rank) are computed once: for k <= 2 as one scalar
// Tuple in registers (a min/max network, ranks counted in integers), for k >= 3
// as tables over the 2^k combinations (values, ranks, sorted values,
// midpoints), each a short vector.
// The midpoints are compared in f32: for a float x and a double m,
// x > m  <=>  x > (m rounded down to a float), so the codes are the reference's.
//
// batched (the quantize_act_batch kernels): a batch of vectors of the same
// length n in one call, each stage for every item before the next stage, so
// that the items' chains of dependent scalar stages (a sum, a division, the
// next pass) overlap, which a call per vector cannot do, and run as vectors
// over the items (quantize_act_batch_stages_schedule); every Func then has the
// item b as its outermost dimension. For one vector that loop costs more than
// it saves (the quantize_act kernels leave it out).
//
// Buffers (without b when not batched):
//   x(e, b)          f32  input: item b's n >= 1 values, padded to a multiple of
//                         64 (the packing pass reads the padding; it is never
//                         counted and its bits are masked off)
//   n                i32  true length
//   bytes(q, j, b)   u8   item b's packed planes as bytes: q in [0, 8 * words);
//                         the memory of a [k][words] u64 array (little-endian),
//                         padding bits 0
//   beta(j, b)       f32  item b's scales
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "Halide.h"

namespace amq::gen {

struct QuantizeActKnobs {
    int lanes = 16;       // f32 lanes of the passes over x (the f64 sums keep as many)
    int pack_vector = 8;  // bytes of a plane per step of the packing loop: 8 = one word
                          // of 64 codes; 16, 24, ... unroll that many words
};

// The arguments of a Func that has the item b as its outermost dimension when
// batched (quantize_act's and rnn_step's Funcs).
struct ItemArgs {
    Halide::Var b{"b"};  // the item, when batched
    bool batched = false;
    // A Func's arguments: `v`, then the item when batched.
    std::vector<Halide::Var> vars(std::vector<Halide::Var> v) const {
        if (batched) v.push_back(b);
        return v;
    }
    std::vector<Halide::Expr> at(std::vector<Halide::Expr> v) const {
        if (batched) v.push_back(b);
        return v;
    }
};

struct QuantizeActFuncs : ItemArgs {
    std::vector<Halide::Func> scalars;  // per-stage scalars (scales, sorted levels), compute_root
    std::vector<Halide::Func> sums;     // the passes over x: partial sums per lane l
    std::vector<Halide::Var> sum_lanes;
    Halide::Func codes;                // final code (combination index) per element
    bool codes_shared = false;         // T >= 1: the last refit reads codes as the packing does
    Halide::Func pack;                 // bytes as a reduction over the 8 bits
    Halide::RDom rb;                   // the 8 elements of a byte
    std::vector<Halide::Func> tables;  // k >= 3: per cycle, over the 2^k s (compute_root)
    Halide::Func bytes, beta;
    Halide::Var e{"e"}, q{"q"}, j{"j"}, s{"s"};
    int k = 1;
};

// Why a knob value cannot be built, or "" (the generator and the tuner check it).
inline std::string quantize_act_knobs_error(const QuantizeActKnobs &k) {
    if (k.lanes < 1 || k.lanes > 64 || 64 % k.lanes != 0)
        return "lanes = " + std::to_string(k.lanes) +
               " (expected 1, 2, 4, .., 64: a divisor of 64)";
    if (k.pack_vector < 8 || k.pack_vector % 8 != 0 || k.pack_vector > 64)
        return "pack_vector = " + std::to_string(k.pack_vector) +
               " (expected 8, 16, .., 64: bytes per step, a multiple of one word)";
    return "";
}

namespace detail {

// A double constant (Halide's Expr(double) is ambiguous).
inline Halide::Expr f64(double v) { return Halide::Internal::make_const(Halide::Float(64), v); }

// Sums over e in [0, n) of each term(e), in one pass. The result is a scalar
// Tuple, element t the sum of term t (one term is padded with a dummy so that
// it is always a Tuple).
// hand_schedule: the pass is lanes(l) over the blocks of `lanes` elements, one
// partial sum per lane (vectorized over l, dense loads), the last partial block
// masked to e < n (the padding of x is read but not counted; `lanes` divides
// 64), then the lanes added as a tree. Otherwise one reduction over ceil(n /
// lanes) blocks, each term masked, in the form the autoschedulers accept.
inline Halide::Func block_sums(const std::string &name, Halide::Expr n, int lanes,
                               std::vector<std::function<Halide::Expr(Halide::Expr)>> terms,
                               QuantizeActFuncs &f, bool hand_schedule = true) {
    using namespace Halide;
    if (terms.size() == 1) {  // a zero dummy, so that the sums are a Tuple
        Expr zero = Internal::make_zero(terms[0](Expr(0)).type());
        terms.push_back([zero](Expr) { return zero; });
    }
    std::vector<Expr> init;
    for (size_t t = 0; t < terms.size(); ++t)
        init.push_back(Internal::make_zero(terms[t](Expr(0)).type()));
    auto masked = [&](size_t t, Expr e) { return select(e < n, terms[t](e), init[t]); };
    Func s(name);
    if (!hand_schedule) {
        RDom rr(0, lanes, 0, (n + lanes - 1) / lanes, name + "_r");
        s(f.vars({})) = Tuple(init);
        std::vector<Expr> upd;
        for (size_t t = 0; t < terms.size(); ++t)
            upd.push_back(s(f.at({}))[int(t)] + masked(t, rr.y * lanes + rr.x));
        s(f.at({})) = Tuple(upd);
        return s;
    }
    Var l("l");
    Func part(name + "_lanes");
    RDom rf(0, n / lanes, name + "_r");
    RDom rl(n / lanes, select(n % lanes > 0, 1, 0), name + "_last");
    part(f.vars({l})) = Tuple(init);
    std::vector<Expr> full, last, total;
    for (size_t t = 0; t < terms.size(); ++t) {
        full.push_back(part(f.at({l}))[int(t)] + terms[t](rf.x * lanes + l));
        last.push_back(part(f.at({l}))[int(t)] + masked(t, rl.x * lanes + l));
    }
    part(f.at({l})) = Tuple(full);
    part(f.at({l})) = Tuple(last);
    f.sums.push_back(part);
    f.sum_lanes.push_back(l);
    for (size_t t = 0; t < terms.size(); ++t) {
        std::vector<Expr> level;
        for (int i = 0; i < lanes; ++i) level.push_back(part(f.at({i}))[int(t)]);
        while (level.size() > 1) {
            std::vector<Expr> up;
            for (size_t i = 0; i + 1 < level.size(); i += 2) up.push_back(level[i] + level[i + 1]);
            if (level.size() % 2) up.push_back(level.back());
            level = up;
        }
        total.push_back(level[0]);
    }
    s(f.vars({})) = Tuple(total);
    f.scalars.push_back(s);
    return s;
}

// |v| for a double, as a mask of the sign bit (Halide's abs compares and selects).
inline Halide::Expr abs64(Halide::Expr v) {
    using namespace Halide;
    return reinterpret<double>(reinterpret<uint64_t>(v) &
                               Internal::make_const(UInt(64), uint64_t(0x7FFFFFFFFFFFFFFFull)));
}

// v where c holds, else -0.0 (the identity of +, so that the sum becomes a masked add).
inline Halide::Expr masked64(Halide::Expr c, Halide::Expr v) { return select(c, v, f64(-0.0)); }

inline Halide::Expr bit_of(Halide::Expr s, int i) { return ((s >> i) & 1) == 1; }

// The largest float <= m (m a double): for every float x, x > m <=> x > below(m).
// Infinite and NaN m give +-inf / NaN, which compare the same way.
inline Halide::Expr f32_below(Halide::Expr m) {
    using namespace Halide;
    Expr f = cast<float>(m);  // nearest
    Expr b = reinterpret<int32_t>(f);
    Expr down = select(f > 0.0f, reinterpret<float>(b - 1),
                       select(f < 0.0f, reinterpret<float>(b + 1),
                              reinterpret<float>(Expr(int32_t(0x80000001u)))));  // -denorm_min
    return select(cast<double>(f) > m, down, f);
}

// The values v(s) = sum_i +-alpha_i (bit i of s: +), summed in the
// reference's order. strict_float: the levels and midpoints round as the
// reference's (fast-math reassociation changes midpoints that cancel).
inline Halide::Expr level_value(const std::vector<Halide::Expr> &alpha, int k, Halide::Expr s) {
    using namespace Halide;
    Expr val = f64(0);
    for (int i = 0; i < k; ++i) val = val + select(((s >> i) & 1) == 1, alpha[i], -alpha[i]);
    return strict_float(val);
}

// Sorts v ascending in place by compare-exchanges (min, max): Batcher's
// odd-even merge sort, for a power-of-two size.
inline void sort_network(std::vector<Halide::Expr> &v) {
    const int n = int(v.size());
    for (int p = 1; p < n; p *= 2)
        for (int k = p; k >= 1; k /= 2)
            for (int j = k % p; j + k < n; j += 2 * k)
                for (int i = 0; i < std::min(k, n - j - k); ++i)
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
                        Halide::Expr a = v[i + j], b = v[i + j + k];
                        v[i + j] = Halide::min(a, b);
                        v[i + j + k] = Halide::max(a, b);
                    }
}

// A cycle's levels: mid(m), the midpoint between ranks m and m + 1 rounded
// down to f32 (m < S - 1), and comb(m), the combination at rank m.
struct Levels {
    std::function<Halide::Expr(int)> mid, comb;
};

// The levels as one scalar Tuple, S - 1 midpoints then S combinations, all in
// registers (k <= 2: 2 or 4 values): the values sorted by a min/max network
// (equal values need no order), the ranks counted in integers. For k >= 3 the
// tables below are faster.
inline Levels scalar_levels(QuantizeActFuncs &f, const std::string &name,
                            const std::vector<Halide::Expr> &alpha, int k) {
    using namespace Halide;
    const int S = 1 << k;
    std::vector<Expr> v(S);
    for (int s = 0; s < S; ++s) v[s] = level_value(alpha, k, s);
    std::vector<Expr> sorted = v, out;
    sort_network(sorted);
    for (int m = 0; m + 1 < S; ++m)
        out.push_back(f32_below(strict_float((sorted[m] + sorted[m + 1]) * f64(0.5))));
    std::vector<Expr> rank(S);
    for (int s = 0; s < S; ++s) {
        Expr r = 0;
        for (int o = 0; o < S; ++o)
            if (o != s) r = r + cast<int>(o > s ? v[o] <= v[s] : v[o] < v[s]);
        rank[s] = r;
    }
    for (int m = 0; m < S; ++m) {
        Expr at = 0;
        for (int s = 1; s < S; ++s) at = at + s * cast<int>(rank[s] == m);
        out.push_back(cast<uint8_t>(at));
    }
    Func levels(name);
    levels(f.vars({})) = Tuple(out);
    f.scalars.push_back(levels);
    return {[levels, &f](int m) { return levels(f.at({}))[m]; },
            [levels, &f, S](int m) { return levels(f.at({}))[S - 1 + m]; }};
}

// The levels as tables over the 2^k combinations s (or ranks m), each computed
// as a short vector: the values, the rank of each s, the values and
// combinations by rank, and the midpoints.
inline Levels table_levels(QuantizeActFuncs &f,
                           const std::function<std::string(const std::string &)> &nm,
                           const std::string &cs, const std::vector<Halide::Expr> &alpha, int k) {
    using namespace Halide;
    const int S = 1 << k;
    Var s = f.s;
    Func vals(nm("vals" + cs));
    vals(f.vars({s})) = level_value(alpha, k, s);
    Func rank(nm("rank" + cs));
    {
        RDom ro(0, S, nm("ro" + cs));
        Expr o = ro.x;
        Expr vo = vals(f.at({o})), vs = vals(f.at({s}));
        Expr before = select(o > s, vo <= vs, o < s && !(vs <= vo));
        rank(f.vars({s})) = 0;
        rank(f.at({s})) += select(before, 1, 0);
    }
    Func sorted(nm("sorted" + cs));  // value and combination at rank s
    {
        RDom rs(0, S, nm("rs" + cs));
        Expr hit = rank(f.at({rs.x})) == s;
        sorted(f.vars({s})) = Tuple(f64(0), 0);
        sorted(f.at({s})) = Tuple(select(hit, vals(f.at({rs.x})), sorted(f.at({s}))[0]),
                                  select(hit, rs.x, sorted(f.at({s}))[1]));
    }
    // The midpoint between ranks s and s + 1 (s < S - 1), the combination at rank s.
    Func levels(nm("levels" + cs));
    levels(f.vars({s})) =
        Tuple(f32_below(strict_float(
                  (sorted(f.at({s}))[0] + sorted(f.at({min(s + 1, S - 1)}))[0]) * f64(0.5))),
              cast<uint8_t>(sorted(f.at({s}))[1]));
    for (Func t : {vals, rank, sorted, levels}) f.tables.push_back(t);
    return {[levels, &f](int m) { return levels(f.at({m}))[0]; },
            [levels, &f](int m) { return levels(f.at({m}))[1]; }};
}

}  // namespace detail

// hand_schedule = false gives the same values in forms Halide 14's
// autoschedulers accept (Li2018 fails on the tail loops and the byte reduction
// with "atomic predicated store"): every sum one masked pass over the padded
// blocks, and the bytes a plain sum of 8 terms.
// prefix: put before every Func's name (a pipeline with two quantizers).
inline QuantizeActFuncs quantize_act_algorithm(Halide::Func x, Halide::Expr n, int k, int T,
                                               int lanes, bool hand_schedule = true,
                                               bool batched = false,
                                               const std::string &prefix = "") {
    using namespace Halide;
    using detail::f64;
    auto nm = [&](const std::string &name) { return prefix + name; };
    QuantizeActFuncs f;
    f.k = k;
    f.batched = batched;
    Expr nd = cast<double>(n);
    auto xf = [&](Expr e) { return x(f.at({e})); };
    auto xd = [&](Expr e) { return cast<double>(xf(e)); };

    // Greedy: alpha_i = mean |r_i|, |r_0| = |x|, |r_{i+1}| = ||r_i| - alpha_i|.
    // The first pass also sums x (for h below).
    std::vector<Expr> alpha;
    Expr xsum;
    for (int i = 0; i < k; ++i) {
        auto absr = [&, i](Expr e) {
            Expr u = detail::abs64(xd(e));
            for (int p = 0; p < i; ++p) u = detail::abs64(u - alpha[p]);
            return u;
        };
        std::vector<std::function<Expr(Expr)>> terms = {absr};
        if (i == 0) terms.push_back(xd);
        Func s =
            detail::block_sums(nm("greedy" + std::to_string(i)), n, lanes, terms, f, hand_schedule);
        Func a(nm("greedy_alpha" + std::to_string(i)));
        a(f.vars({})) = Tuple(s(f.at({}))[0] / nd, s(f.at({}))[1]);
        f.scalars.push_back(a);
        alpha.push_back(a(f.at({}))[0]);
        if (i == 0) xsum = a(f.at({}))[1];
    }

    const int S = 1 << k;
    for (int c = 0; c < T; ++c) {
        std::string cs = std::to_string(c);
        // This cycle's levels: the midpoints between consecutive sorted values
        // v(s) = sum_i +-alpha_i, rounded down to f32 (mid(m), m < S - 1), and
        // the combination at each rank (comb(m)), ranked by value, then s
        // descending (o before s: v[o] < v[s], or equal values and o > s; each
        // pair is decided by one comparison, so the ranks are a permutation).
        const detail::Levels lv = k <= 2 ? detail::scalar_levels(f, nm("levels" + cs), alpha, k)
                                         : detail::table_levels(f, nm, cs, alpha, k);
        auto code = [&, S, lv](Expr e) {
            Expr xe = xf(e);
            Expr s_e = lv.comb(0);
            for (int mm = 0; mm + 1 < S; ++mm)
                s_e = select(xe > lv.mid(mm), lv.comb(mm + 1), s_e);
            return s_e;
        };
        if (c == T - 1) {
            f.codes = Func(nm("codes"));
            f.codes(f.vars({f.e})) = code(f.e);
            f.codes_shared = true;
        }

        // Refit: h_i = 2 sum_{bit i} x - sum x, G_ii = n, G_ij = n - 2 #(bit i != bit j),
        // all summed in one pass (a tuple reduction).
        std::vector<Expr> h(k);
        std::vector<std::vector<Expr>> G(k, std::vector<Expr>(k));
        Expr d01;  // k = 2: #(bit 0 != bit 1)
        {
            std::vector<std::function<Expr(Expr)>> terms;
            // The last cycle reads its codes from `codes`, which the packing
            // reads too: computed once.
            const bool last = c == T - 1;
            auto code_at = [&, last](Expr e) { return last ? f.codes(f.at({e})) : code(e); };
            for (int i = 0; i < k; ++i)
                terms.push_back([&, i](Expr e) {
                    return detail::masked64(detail::bit_of(code_at(e), i), xd(e));
                });
            for (int i = 0; i < k; ++i)
                for (int jx = 0; jx < i; ++jx)
                    terms.push_back([&, i, jx](Expr e) {
                        Expr s_e = code_at(e);
                        return select(detail::bit_of(s_e, i) != detail::bit_of(s_e, jx), 1, 0);
                    });
            Func sums = detail::block_sums(nm("refit" + cs), n, lanes, terms, f, hand_schedule);
            int idx = 0;
            for (int i = 0; i < k; ++i) h[i] = f64(2) * sums(f.at({}))[idx++] - xsum;
            for (int i = 0; i < k; ++i) {
                G[i][i] = nd;
                for (int jx = 0; jx < i; ++jx)
                    G[i][jx] = G[jx][i] = cast<double>(n - 2 * sums(f.at({}))[idx++]);
            }
            if (k == 2) d01 = sums(f.at({}))[2];
        }
        std::vector<Expr> sol(k);
        Expr ok = Internal::const_true();
        if (k == 1) {
            sol[0] = h[0] / nd;  // G = (n), never singular (n >= 1)
        } else if (k == 2) {
            // As the reference: alpha = adj(G) h / det with the exact integer
            // cofactors (G_01 = n - 2 d_01, |det| <= n^2 < 2^62), summed in its
            // order; singular when det = 0.
            Expr g01 = cast<int64_t>(n) - 2 * cast<int64_t>(d01);
            Expr det = cast<int64_t>(n) * cast<int64_t>(n) - g01 * g01;
            ok = det != 0;
            Expr dd = cast<double>(det), gd = cast<double>(g01);
            sol[0] = strict_float((f64(0) + nd * h[0] + (-gd) * h[1]) / dd);
            sol[1] = strict_float((f64(0) + (-gd) * h[0] + nd * h[1]) / dd);
        } else {
            // Gaussian elimination in natural order (G is a Gram matrix: SPD unless
            // singular). Singular when a pivot is <= 1e-9 n: keep the previous scales.
            for (int p = 0; p < k; ++p) {
                ok = ok && (G[p][p] > f64(1e-9) * nd);
                for (int r = p + 1; r < k; ++r) {
                    Expr fct = G[r][p] / G[p][p];
                    for (int cc = p; cc < k; ++cc) G[r][cc] = G[r][cc] - fct * G[p][cc];
                    h[r] = h[r] - fct * h[p];
                }
            }
            for (int p = k - 1; p >= 0; --p) {
                Expr acc = h[p];
                for (int cc = p + 1; cc < k; ++cc) acc = acc - G[p][cc] * sol[cc];
                sol[p] = acc / G[p][p];
            }
        }
        Func a(nm("alt_alpha" + cs));
        std::vector<Expr> next(k);
        for (int i = 0; i < k; ++i) next[i] = select(ok, sol[i], alpha[i]);
        a(f.vars({})) = k == 1 ? Tuple(next[0], next[0]) : Tuple(next);
        f.scalars.push_back(a);
        for (int i = 0; i < k; ++i) alpha[i] = a(f.at({}))[i];
    }

    if (T == 0) {
        // Greedy codes: sign of each residual (in f64, as the reference).
        f.codes = Func(nm("codes"));
        Expr r = xd(f.e);
        Expr s_e = cast<uint8_t>(0);
        for (int i = 0; i < k; ++i) {
            s_e = s_e | select(r >= f64(0), cast<uint8_t>(1 << i), cast<uint8_t>(0));
            if (i + 1 < k) r = r - select(r >= f64(0), alpha[i], -alpha[i]);
        }
        f.codes(f.vars({f.e})) = s_e;
    }

    // Pack: byte q of plane j holds elements 8q .. 8q+7, the sum over the 8 of
    // (bit j of the code) << b, which vectorizes to dense loads and a lane
    // reduction. The bits past n are masked off in the last byte(s).
    {
        f.rb = RDom(0, 8, nm("rb"));
        Expr s_e = f.codes(f.at({f.q * 8 + f.rb}));
        Expr pow2 = cast<uint8_t>(128);  // 1 << rb (a shift by rb crashes Halide 14's trim_no_ops)
        for (int bit = 6; bit >= 0; --bit)
            pow2 = select(f.rb == bit, cast<uint8_t>(1 << bit), pow2);
        Expr plane = cast<uint8_t>(1) << cast<uint8_t>(f.j);
        f.pack = Func(nm("pack"));
        if (hand_schedule) {
            f.pack(f.vars({f.q, f.j})) = cast<uint8_t>(0);
            f.pack(f.at({f.q, f.j})) += select((s_e & plane) != 0, pow2, cast<uint8_t>(0));
        } else {
            Expr acc = cast<uint8_t>(0);
            for (int bit = 0; bit < 8; ++bit)
                acc = acc + select((f.codes(f.at({f.q * 8 + bit})) & plane) != 0,
                                   cast<uint8_t>(1 << bit), cast<uint8_t>(0));
            f.pack(f.vars({f.q, f.j})) = acc;
        }
        f.bytes = Func(nm("bytes"));
        Expr valid = clamp(n - f.q * 8, 0, 8);  // elements of byte q below n
        Expr mask = cast<uint8_t>(select(valid == 8, 255, (1 << valid) - 1));
        f.bytes(f.vars({f.q, f.j})) = f.pack(f.at({f.q, f.j})) & mask;
    }
    f.beta = Func(nm("beta"));
    Expr bj = cast<float>(alpha[k - 1]);
    for (int i = k - 2; i >= 0; --i) bj = select(f.j == i, cast<float>(alpha[i]), bj);
    f.beta(f.vars({f.j})) = bj;
    return f;
}

// The buffer constraints of quantize_act, shared by its generator and the tuner:
// x padded to whole words, the planes' bytes [k][words * 8] packed, k scales;
// with `items`, one of each per item (x [items][padded], bytes [items][k][words
// * 8], beta [items][k]; an item's x and bytes may be anywhere, the items of
// bytes and beta as many as those of x). bytes and beta are the output buffers
// (the generator's Outputs, or f.bytes.output_buffer() and f.beta.output_buffer()).
template <typename XBuffer, typename BytesBuffer, typename BetaBuffer>
void constrain_quantize_act_buffers(XBuffer &x, Halide::Expr n, BytesBuffer &&bytes,
                                    BetaBuffer &&beta, int k, bool items = false) {
    x.dim(0).set_bounds(0, ((n + 63) / 64) * 64);
    bytes.dim(0).set_bounds(0, ((n + 63) / 64) * 8);
    bytes.dim(1).set_bounds(0, k);
    bytes.dim(1).set_stride(bytes.dim(0).extent());
    beta.dim(0).set_bounds(0, k);
    if (items) {
        x.dim(1).set_min(0);
        bytes.dim(2).set_bounds(0, x.dim(1).extent());
        beta.dim(1).set_bounds(0, x.dim(1).extent());
    }
}

// The estimates the autoschedulers plan with, at a vector of n values, shared
// by the generator (est_n) and the tuner (the problem's length).
// items > 0: that many items (the buffers of constrain_quantize_act_buffers with items).
template <typename XBuffer, typename NParam, typename BytesFunc, typename BetaFunc>
void set_quantize_act_estimates(XBuffer &x, NParam &n_param, BytesFunc &&bytes, BetaFunc &&beta,
                                int k, int n, int items = 0) {
    const int padded = (n + 63) / 64 * 64;
    Halide::Region xr = {{0, padded}}, br = {{0, padded / 8}, {0, k}}, sr = {{0, k}};
    if (items > 0)
        for (Halide::Region *r : {&xr, &br, &sr}) r->push_back({0, items});
    n_param.set_estimate(n);
    x.set_estimates(xr);
    bytes.set_estimates(br);
    beta.set_estimates(sr);
}

// The stages of one vector: the scalar stages and the tables once, the tables
// as short vectors over the 2^k combinations; each pass vectorized over its
// lanes. Storage on Halide's stack, not a heap allocation per stage and call.
inline void quantize_act_vector_stages_schedule(QuantizeActFuncs &f) {
    using namespace Halide;
    for (auto &s : f.scalars) s.compute_root().store_in(MemoryType::Stack);
    // The tables in vectors of at most 8 (16 lanes of k = 4 made LLVM's
    // sapphirerapids target pick vmovsh, an AVX512-FP16 move Zen 4 and 5 lack).
    // Not unrolled: Halide 14 partitions the unrolled rank loop of k = 2 wrongly
    // (it drops the o > s part of the rank's select).
    const int table_vector = std::min(1 << f.k, 8);
    for (auto &t : f.tables) {
        t.bound(f.s, 0, 1 << f.k).compute_root().store_in(MemoryType::Stack);
        t.vectorize(f.s, table_vector);
        for (int u = 0; u < t.num_update_definitions(); ++u)
            t.update(u).vectorize(f.s, table_vector);
    }
    for (size_t i = 0; i < f.sums.size(); ++i) {
        const Var &l = f.sum_lanes[i];
        f.sums[i].compute_root().store_in(MemoryType::Stack).vectorize(l);
        f.sums[i].update(0).vectorize(l);
        f.sums[i].update(1).vectorize(l);
    }
}

// The items per vector of the batched scalar stages: the f64 lanes of a 512-bit vector.
constexpr int kItemVector = 8;

// batched: every stage for all the items before the next. The stages between
// the passes over x (the lane trees, the scales, the solve, the tables) are a
// short chain of scalar work per item, the same operations in the same order
// for every item: vectorized over the items, kItemVector at a time (the codes
// stay those of one call per vector). The passes stay one item at a time,
// vectorized over its lanes; each copies its lane partials out once, items
// innermost, for the trees to read as vectors. Storage as above (the stack
// takes the heap past 16 KB, for large batches).
inline void quantize_act_batch_stages_schedule(QuantizeActFuncs &f) {
    using namespace Halide;
    const Var b = f.b;
    const TailStrategy tail = TailStrategy::GuardWithIf;  // masked, in Halide 14
    for (auto &s : f.scalars)
        s.compute_root().store_in(MemoryType::Stack).vectorize(b, kItemVector, tail);
    for (auto &t : f.tables) {
        t.bound(f.s, 0, 1 << f.k).compute_root().store_in(MemoryType::Stack);
        t.reorder_storage(b, f.s).reorder(b, f.s).vectorize(b, kItemVector, tail);
        for (int u = 0; u < t.num_update_definitions(); ++u) {
            std::vector<VarOrRVar> order = {b, f.s};
            for (const RVar &r : t.rvars(u)) order.push_back(r);
            t.update(u).reorder(order).vectorize(b, kItemVector, tail);
        }
    }
    for (size_t i = 0; i < f.sums.size(); ++i) {
        const Var &l = f.sum_lanes[i];
        Func items_inner = f.sums[i].in();  // what the trees read
        items_inner.compute_root().store_in(MemoryType::Stack).reorder_storage(b, l).vectorize(l);
        f.sums[i].compute_at(items_inner, b).store_in(MemoryType::Stack).vectorize(l);
        f.sums[i].update(0).vectorize(l);
        f.sums[i].update(1).vectorize(l);
    }
}

inline void quantize_act_schedule(QuantizeActFuncs &f, const QuantizeActKnobs &kn) {
    using namespace Halide;
    if (f.batched)
        quantize_act_batch_stages_schedule(f);
    else
        quantize_act_vector_stages_schedule(f);
    // Packing: per word (64 elements), its codes, then the 8 bytes of every plane;
    // pack_vector / 8 words unrolled per step.
    Var w("w"), qi("qi");
    f.bytes.split(f.q, w, qi, 8, TailStrategy::RoundUp).reorder(qi, f.j, w).vectorize(qi);
    if (kn.pack_vector > 8) {
        Var wo("wo"), wi("wi");
        f.bytes.split(w, wo, wi, kn.pack_vector / 8, TailStrategy::GuardWithIf).unroll(wi);
        w = wi;
    }
    f.pack.compute_at(f.bytes, w).vectorize(f.q);
    f.pack.update().atomic().vectorize(f.rb).vectorize(f.q);
    if (f.codes_shared)  // the last refit's pass reads them too: once, before it
        f.codes.compute_root()
            .store_in(MemoryType::Stack)
            .vectorize(f.e, 64, TailStrategy::RoundUp);
    else
        f.codes.compute_at(f.bytes, w).vectorize(f.e, 64);
}

}  // namespace amq::gen
