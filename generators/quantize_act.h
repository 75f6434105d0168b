// quantize_act: online k-bit quantization of an activation vector, every step.
//
// Greedy init, then T alternating cycles {optimal codes for fixed scales by
// comparison with the midpoints of the sorted 2^k values; least-squares refit of
// the scales}, exactly as amq::ref::quantize_act (quantize/reference.h), whose
// conventions (blocked f32 sums, tie breaks, singular fallback) it follows.
//
// Passes over x (each one vectorized loop; the sums in f32 as kSumLanes partial
// sums, lane l over elements l, l + kSumLanes, .., the last partial block
// masked to e < n, then the lanes added as a tree in f64: block_sums):
// k <= 2 (abs_two_means: with canonical scales a cycle is a 2-means step on |x|)
//   greedy 0            sum |x|: a_0 (k = 1: all)
//   greedy 1            at m = a_0: U = sum and C = count of the |x| >= m: a_1
//   cycle c = 0..T-1    U and C at this cycle's m (cycle 0: none when its m is
//                       greedy's a_0, the usual case); a 2 x 2 solve
// k >= 3 (table_alternating)
//   greedy i = 0..k-1   sum |r_i| (and sum x with i = 0), in f32: r_0 = x,
//                       r_{i+1} = r_i - a_i sign(r_i), a_i = float(alpha_i),
//                       summed as |r_{i+1}| = ||r_i| - a_i| (the same rounding)
//   cycle c = 0..T-1    codes by compare-and-select against the 2^k - 1
//                       midpoints of the sorted values (tables over the 2^k
//                       combinations: values, ranks, sorted values,
//                       midpoints), then h'_i = sum over bit i set of x and
//                       d_ij = #(bit i != bit j); h_i = 2 h'_i - sum x, G_ij
//                       = n - 2 d_ij; Gaussian elimination
// pack                  per word of 64 elements: the codes (the last cycle's,
//                       or greedy's when T = 0), then the 8 bytes of each plane
//                       as sums of (bit << b) over 8 lanes; then the last
//                       word's bytes masked past n
// The thresholds are compared in f32: for a float x and a double m,
// x > m  <=>  x > (m rounded down to a float), x >= m  <=>  x >= (m rounded
// up), so the codes are the reference's.
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
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "Halide.h"

namespace amq::gen {

// The partial sums of the passes: kSumLanes of them, lane l summing elements
// l, l + kSumLanes, l + 2 kSumLanes, .. in that order (f32 terms in f32, i32
// terms in i32), then the lanes added as a halving tree in f64 (i32: i32):
// level 1 adds lanes l and l + 16, level 2 l and l + 8, .., down to one. The
// order is part of the definition (ref::quantize_act follows it, as
// ref::kActSumLanes), not of the schedule: `lanes` only sets how many partial
// sums a vector holds. 32 partial sums: two vectors of 16 f32 per term, whose
// chains of dependent adds are half as long as one vector's (at n = 1024, the
// passes of k <= 2 are bound by those chains); more lanes cost more in the
// tree than they save below n = 300 or so.
constexpr int kSumLanes = 32;

struct QuantizeActKnobs {
    int lanes = 16;       // f32 lanes of a vector of the passes over x (divides kSumLanes)
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
    // Per pass, its lane tree level by level: kSumLanes / 2, / 4, .., 1 lanes.
    std::vector<std::vector<Halide::Func>> trees;
    Halide::Func codes;                // final code (combination index) per element
    Halide::Func pack;                 // bytes as a reduction over the 8 bits
    Halide::RDom rb;                   // the 8 elements of a byte
    Halide::RDom last_word;            // the bytes of the last word (masked past n)
    std::vector<Halide::Func> tables;  // k >= 3: per cycle, over the 2^k s (compute_root)
    Halide::Func bytes, beta;
    Halide::Var e{"e"}, q{"q"}, j{"j"}, s{"s"};
    int k = 1;
};

// Why a knob value cannot be built, or "" (the generator and the tuner check it).
inline std::string quantize_act_knobs_error(const QuantizeActKnobs &k) {
    if (k.lanes < 1 || k.lanes > kSumLanes || kSumLanes % k.lanes != 0)
        return "lanes = " + std::to_string(k.lanes) + " (expected 1, 2, 4, .., " +
               std::to_string(kSumLanes) + ": a divisor of the " + std::to_string(kSumLanes) +
               " partial sums)";
    if (k.pack_vector < 8 || k.pack_vector % 8 != 0 || k.pack_vector > 64)
        return "pack_vector = " + std::to_string(k.pack_vector) +
               " (expected 8, 16, .., 64: bytes per step, a multiple of one word)";
    return "";
}

namespace detail {

// A double constant (Halide's Expr(double) is ambiguous).
inline Halide::Expr f64(double v) { return Halide::Internal::make_const(Halide::Float(64), v); }


inline Halide::Expr strict_if_float(Halide::Expr v) {
    return v.type().is_float() ? Halide::strict_float(v) : v;
}

// A per-stage scalar (a scale, a threshold, a sum's total): a Func over the
// item only, kept in f.scalars for the schedules (compute_root).
inline Halide::Func scalar_stage(QuantizeActFuncs &f, const std::string &name,
                                 const Halide::Tuple &value) {
    Halide::Func s(name);
    s(f.vars({})) = value;
    f.scalars.push_back(s);
    return s;
}
inline Halide::Func scalar_stage(QuantizeActFuncs &f, const std::string &name,
                                 const Halide::Expr &value) {
    return scalar_stage(f, name, Halide::Tuple(std::vector<Halide::Expr>{value}));
}

// Sums over e in [0, n) of each term(e) (f32 or i32), in one pass, as above;
// with `active` (a scalar condition), only where it holds (else the sums are
// -0.0 and 0, and the pass is skipped).
// The result is a scalar Tuple, element t the sum of term t (f64 for an f32
// term, i32 for an i32 one; one term is padded with a dummy so that it is
// always a Tuple).
// hand_schedule: the blocks of kSumLanes elements in two updates, the whole
// blocks then the last partial one masked to e < n (the padding of x is read
// but not counted). Otherwise one masked update over all the blocks, the form
// the autoschedulers accept.
inline Halide::Func block_sums(const std::string &name, Halide::Expr n,
                               std::vector<std::function<Halide::Expr(Halide::Expr)>> terms,
                               QuantizeActFuncs &f, bool hand_schedule = true,
                               Halide::Expr active = Halide::Expr()) {
    using namespace Halide;
    if (terms.size() == 1) {  // a zero dummy, so that the sums are a Tuple
        Expr zero = Internal::make_zero(terms[0](Expr(0)).type());
        terms.push_back([zero](Expr) { return zero; });
    }
    const int L = kSumLanes;
    std::vector<Expr> init;
    for (size_t t = 0; t < terms.size(); ++t) {
        Type ty = terms[t](Expr(0)).type();
        // -0.0: the identity of a float sum, so that a masked term is a masked add.
        init.push_back(ty.is_float() ? Internal::make_const(ty, -0.0) : Internal::make_zero(ty));
    }
    auto masked = [&](size_t t, Expr e) { return select(e < n, terms[t](e), init[t]); };
    Var l("l");
    Func part(name + "_lanes");
    part(f.vars({l})) = Tuple(init);
    std::vector<Expr> full, last;
    if (hand_schedule) {
        RDom rf(0, n / L, name + "_r");
        RDom rl(n / L, select(n % L > 0, 1, 0), name + "_last");
        if (active.defined()) {
            rf.where(active);
            rl.where(active);
        }
        for (size_t t = 0; t < terms.size(); ++t) {
            full.push_back(strict_if_float(part(f.at({l}))[int(t)] + terms[t](rf.x * L + l)));
            last.push_back(strict_if_float(part(f.at({l}))[int(t)] + masked(t, rl.x * L + l)));
        }
        part(f.at({l})) = Tuple(full);
        part(f.at({l})) = Tuple(last);
    } else {
        RDom rr(0, (n + L - 1) / L, name + "_r");
        if (active.defined()) rr.where(active);
        for (size_t t = 0; t < terms.size(); ++t)
            full.push_back(strict_if_float(part(f.at({l}))[int(t)] + masked(t, rr.x * L + l)));
        part(f.at({l})) = Tuple(full);
    }
    f.sums.push_back(part);
    f.sum_lanes.push_back(l);
    // The tree: level(l) = below(l) + below(l + width), width = L / 2, L / 4, .., 1.
    Func below = part;
    bool widen = true;
    f.trees.emplace_back();
    for (int width = L / 2; width >= 1; width /= 2) {
        Func level(name + "_tree" + std::to_string(width));
        std::vector<Expr> v;
        for (size_t t = 0; t < terms.size(); ++t) {
            Expr a = below(f.at({l}))[int(t)], b = below(f.at({l + width}))[int(t)];
            if (widen && a.type().is_float()) {
                a = cast<double>(a);
                b = cast<double>(b);
            }
            v.push_back(strict_if_float(a + b));
        }
        level(f.vars({l})) = Tuple(v);
        f.trees.back().push_back(level);
        below = level;
        widen = false;
    }
    std::vector<Expr> total;
    for (size_t t = 0; t < terms.size(); ++t) total.push_back(below(f.at({0}))[int(t)]);
    return scalar_stage(f, name, Tuple(total));
}

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

// The smallest float >= m: for every float x, x >= m <=> x >= at_least(m).
inline Halide::Expr f32_at_least(Halide::Expr m) { return -f32_below(-m); }

// The values v(s) = sum_i +-alpha_i (bit i of s: +), summed in the
// reference's order. strict_float: the levels and midpoints round as the
// reference's (fast-math reassociation changes midpoints that cancel).
inline Halide::Expr level_value(const std::vector<Halide::Expr> &alpha, int k, Halide::Expr s) {
    using namespace Halide;
    Expr val = f64(0);
    for (int i = 0; i < k; ++i) val = val + select(((s >> i) & 1) == 1, alpha[i], -alpha[i]);
    return strict_float(val);
}

// A cycle's levels: mid(m), the midpoint between ranks m and m + 1 rounded
// down to f32 (m < S - 1), and comb(m), the combination at rank m.
struct Levels {
    std::function<Halide::Expr(int)> mid, comb;
    // The code of a float x: the combination at its rank, #{m : x > mid(m)}.
    Halide::Expr code(Halide::Expr x, int S) const {
        Halide::Expr s_e = comb(0);
        for (int m = 0; m + 1 < S; ++m) s_e = select(x > mid(m), comb(m + 1), s_e);
        return s_e;
    }
};

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

// k <= 2 (quantize_act_algorithm): the values +-a_0 +-a_1 are symmetric about
// 0, so with canonical scales a_0 >= a_1 >= 0 the nearest value of x has the
// sign of x (code 0: x >= 0) and is +-(a_0 + a_1) when |x| >= a_0 (their
// midpoint; ties outward), else +-(a_0 - a_1): code 1 = code 0 exactly when
// |x| >= a_0. The least-squares refit of those codes is the mean of the |x| at
// or above a_0 (a_0 + a_1) and of those below (a_0 - a_1): a cycle is a 2-means
// step on |x|, one pass of a compare and two masked adds per vector (U = sum
// and C = count of the |x| >= m). Greedy: a_0 = mean |x|, a_1 = mean ||x| -
// a_0| = (2 U - S - a_0 (2 C - n)) / n at m = a_0; its codes (T = 0) are those
// above at m = a_0. A cycle first makes its scales canonical (a_0, a_1 =
// max, min of |a_0|, |a_1|: the same values), so m = a_0; cycle 0 reuses the
// greedy pass when that is greedy's a_0 (a_1 <= a_0, the usual case). The
// codes out are the last cycle's, which its refit solved for. k = 1: a_0 =
// mean |x|, code sign(x); cycles change nothing. Every operation in the order
// of ref::quantize_act. Sets f.codes; returns the scales.
inline std::vector<Halide::Expr>
abs_two_means(QuantizeActFuncs &f, Halide::Func x, Halide::Expr n, int k, int T,
              bool hand_schedule, const std::function<std::string(const std::string &)> &nm) {
    using namespace Halide;
    Expr nd = cast<double>(n);
    auto xf = [&f, x](Expr e) { return x(f.at({e})); };
    auto ax = [xf](Expr e) { return abs(xf(e)); };
    Func s0 = block_sums(nm("greedy0"), n, {ax}, f, hand_schedule);
    Expr S = s0(f.at({}))[0];
    Func a0f = scalar_stage(f, nm("greedy_alpha0"), Tuple(S / nd, S));
    Expr a0 = a0f(f.at({}))[0];
    auto code0 = [xf](Expr e) { return select(xf(e) >= 0.0f, cast<uint8_t>(1), cast<uint8_t>(0)); };
    f.codes = Func(nm("codes"));
    if (k == 1) {
        f.codes(f.vars({f.e})) = code0(f.e);
        return {a0};
    }
    // U, C: the sum and the count of the |x| >= m (the float threshold of m a
    // scalar stage); `skip`: none when it holds. The condition is a Func of its
    // own (Halide 14 fails on a Tuple in an RDom predicate), which the threshold
    // calls (+inf when skipped, never summed): Halide 14 does not realize a Func
    // called only in a predicate first.
    auto outer = [&](const std::string &name, Expr m, Expr skip) {
        Expr active, at = f32_at_least(m);
        if (skip.defined()) {
            active = !scalar_stage(f, name + "_skip", skip)(f.at({}));
            at = select(active, at, std::numeric_limits<float>::infinity());
        }
        Expr t = scalar_stage(f, name + "_at", Tuple(at, m))(f.at({}))[0];
        std::vector<std::function<Expr(Expr)>> terms = {
            [ax, t](Expr e) { return select(ax(e) >= t, ax(e), -0.0f); },
            [ax, t](Expr e) { return select(ax(e) >= t, 1, 0); }};
        Func sums = block_sums(name, n, terms, f, hand_schedule, active);
        return std::tuple<Expr, Expr, Expr>(sums(f.at({}))[0], sums(f.at({}))[1], active);
    };
    auto [U0, C0, unused] = outer(nm("greedy1"), a0, Expr());
    Expr a1 = strict_float((f64(2) * U0 - S - a0 * (f64(2) * cast<double>(C0) - nd)) / nd);
    Func a1f = scalar_stage(f, nm("greedy_alpha1"), Tuple(a0, a1));
    std::vector<Expr> alpha = {a1f(f.at({}))[0], a1f(f.at({}))[1]};
    Expr m = a0;  // the threshold of the codes so far: greedy's
    auto canonical = [&](const std::string &name) {
        Expr p = abs(alpha[0]), q = abs(alpha[1]);
        Func c = scalar_stage(f, name, Tuple(max(p, q), min(p, q)));
        alpha = {c(f.at({}))[0], c(f.at({}))[1]};
    };
    for (int c = 0; c < T; ++c) {
        const std::string cs = std::to_string(c);
        canonical(nm("canonical" + cs));
        m = alpha[0];
        // Cycle 0: no pass when its m is greedy's (its U and C are greedy 1's).
        Expr skip = c == 0 ? m == a0 : Expr();
        auto [U, C, active] = outer(nm("refit" + cs), m, skip);
        if (active.defined()) {
            U = select(active, U, U0);
            C = select(active, C, C0);
        }
        // alpha = G^-1 h, G = ((n, g), (g, n)), g = 2 C - n, h = (S, 2 U - S), as
        // the reference: the adjugate with the exact integer determinant;
        // singular (det = 0: every |x| above m, or none) keeps the scales.
        Expr n64 = cast<int64_t>(n), gi = cast<int64_t>(C) * 2 - n64;
        Expr det = n64 * n64 - gi * gi;
        Expr g = cast<double>(gi), dd = cast<double>(det);
        Expr h1 = strict_float(f64(2) * U - S);
        Expr sol0 = strict_float((f64(0) + nd * S + (-g) * h1) / dd);
        Expr sol1 = strict_float((f64(0) + (-g) * S + nd * h1) / dd);
        Func a =
            scalar_stage(f, nm("alt_alpha" + cs),
                         Tuple(select(det != 0, sol0, alpha[0]), select(det != 0, sol1, alpha[1])));
        alpha = {a(f.at({}))[0], a(f.at({}))[1]};
    }
    // The codes of the last cycle (those its refit solved for), or greedy's. The
    // stage also holds the scales out, so that Halide 14 realizes the refit
    // before the packing (else a skipped pass's condition is not yet in scope
    // when the packing's bounds are checked: T = 1).
    Func codes_at = scalar_stage(f, nm("codes_at"), Tuple(f32_at_least(m), m, alpha[0]));
    Expr t = codes_at(f.at({}))[0];
    f.codes(f.vars({f.e})) = code0(f.e) | select((xf(f.e) >= 0.0f) == (ax(f.e) >= t),
                                                 cast<uint8_t>(2), cast<uint8_t>(0));
    return alpha;
}

// k >= 3 (quantize_act_algorithm): greedy, then T cycles of {codes by the
// midpoints of the sorted 2^k values (table_levels), refit by one pass of
// per-bit sums and Gaussian elimination}. Sets f.codes; returns the scales.
inline std::vector<Halide::Expr>
table_alternating(QuantizeActFuncs &f, Halide::Func x, Halide::Expr n, int k, int T,
                  bool hand_schedule, const std::function<std::string(const std::string &)> &nm) {
    using namespace Halide;
    Expr nd = cast<double>(n);
    auto xf = [&f, x](Expr e) { return x(f.at({e})); };
    std::vector<Expr> alpha;
    // Greedy, in f32: r_0 = x, r_{i+1} = r_i - a_i sign(r_i) with a_i =
    // float(alpha_i), alpha_i = (sum |r_i|) / n in f64. |r_{i+1}| = ||r_i| - a_i|
    // exactly (rounding is symmetric), which the passes sum. The first pass also
    // sums x (for h below).
    Expr xsum;
    for (int i = 0; i < k; ++i) {
        auto absr = [&, i](Expr e) {
            Expr u = abs(xf(e));
            for (int p = 0; p < i; ++p) u = abs(strict_float(u - cast<float>(alpha[p])));
            return u;
        };
        std::vector<std::function<Expr(Expr)>> terms = {absr};
        if (i == 0) terms.push_back(xf);
        Func s =
            block_sums(nm("greedy" + std::to_string(i)), n, terms, f, hand_schedule);
        Func a = scalar_stage(f, nm("greedy_alpha" + std::to_string(i)),
                              Tuple(s(f.at({}))[0] / nd, s(f.at({}))[1]));
        alpha.push_back(a(f.at({}))[0]);
        if (i == 0) xsum = a(f.at({}))[1];
    }

    const int S = 1 << k;
    Levels lv;  // the last cycle's levels, which the codes use
    for (int c = 0; c < T; ++c) {
        std::string cs = std::to_string(c);
        // This cycle's levels: the midpoints between consecutive sorted values
        // v(s) = sum_i +-alpha_i, rounded down to f32 (mid(m), m < S - 1), and
        // the combination at each rank (comb(m)), ranked by value, then s
        // descending (o before s: v[o] < v[s], or equal values and o > s; each
        // pair is decided by one comparison, so the ranks are a permutation).
        lv = table_levels(f, nm, cs, alpha, k);
        auto code = [&, S, lv](Expr e) { return lv.code(xf(e), S); };

        // Refit: alpha = G^-1 h with h_i = sum_e c_i(e) x_e and G_ij = sum_e
        // c_i(e) c_j(e) (c = +-1), from one pass: h'_i = sum of the x with bit i
        // of the code set and d_ij = #(bit i != bit j); h_i = 2 h'_i - sum x,
        // G_ij = n - 2 d_ij.
        std::vector<Expr> h(k);
        std::vector<std::vector<Expr>> G(k, std::vector<Expr>(k));
        std::vector<std::function<Expr(Expr)>> terms;
        for (int i = 0; i < k; ++i)
            terms.push_back([&, i](Expr e) {
                return select(bit_of(code(e), i), xf(e), -0.0f);
            });
        for (int i = 0; i < k; ++i)
            for (int jx = 0; jx < i; ++jx)
                terms.push_back([&, i, jx](Expr e) {
                    Expr s_e = code(e);
                    return select(bit_of(s_e, i) != bit_of(s_e, jx), 1, 0);
                });
        Func sums = block_sums(nm("refit" + cs), n, terms, f, hand_schedule);
        int idx = 0;
        for (int i = 0; i < k; ++i) h[i] = strict_float(f64(2) * sums(f.at({}))[idx++] - xsum);
        for (int i = 0; i < k; ++i) {
            G[i][i] = nd;
            for (int jx = 0; jx < i; ++jx)
                G[i][jx] = G[jx][i] = cast<double>(n - 2 * sums(f.at({}))[idx++]);
        }
        // Gaussian elimination in natural order (G is a Gram matrix: SPD unless
        // singular). Singular when a pivot is <= 1e-9 n: keep the previous scales.
        std::vector<Expr> sol(k);
        Expr ok = Internal::const_true();
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
        std::vector<Expr> next(k);
        for (int i = 0; i < k; ++i) next[i] = select(ok, sol[i], alpha[i]);
        Func a = scalar_stage(f, nm("alt_alpha" + cs), Tuple(next));
        for (int i = 0; i < k; ++i) alpha[i] = a(f.at({}))[i];
    }

    f.codes = Func(nm("codes"));
    if (T == 0) {
        // Greedy codes: the signs of the f32 residuals (sign(+-0) = +1).
        Expr r = xf(f.e);
        Expr s_e = cast<uint8_t>(0);
        for (int i = 0; i < k; ++i) {
            s_e = s_e | select(r >= 0.0f, cast<uint8_t>(1 << i), cast<uint8_t>(0));
            if (i + 1 < k) {
                Expr ai = cast<float>(alpha[i]);
                r = strict_float(r - select(r >= 0.0f, ai, -ai));
            }
        }
        f.codes(f.vars({f.e})) = s_e;
    } else {
        // The last cycle's codes: those its refit summed.
        f.codes(f.vars({f.e})) = lv.code(xf(f.e), S);
    }
    return alpha;
}

}  // namespace detail

// hand_schedule = false gives the same values in forms Halide 14's
// autoschedulers accept (Li2018 fails on the tail loops and the byte reduction
// with "atomic predicated store"): every sum one masked pass over the padded
// blocks, and the bytes a plain sum of 8 terms.
// prefix: put before every Func's name (a pipeline with two quantizers).
inline QuantizeActFuncs quantize_act_algorithm(Halide::Func x, Halide::Expr n, int k, int T,
                                               bool hand_schedule = true,
                                               bool batched = false,
                                               const std::string &prefix = "") {
    using namespace Halide;
    auto nm = [&](const std::string &name) { return prefix + name; };
    QuantizeActFuncs f;
    f.k = k;
    f.batched = batched;

    std::vector<Expr> alpha = k <= 2 ? detail::abs_two_means(f, x, n, k, T, hand_schedule, nm)
                                     : detail::table_alternating(f, x, n, k, T, hand_schedule, nm);

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
        // The bytes of the last word are masked afterwards (an update over them).
        f.bytes = Func(nm("bytes"));
        f.bytes(f.vars({f.q, f.j})) = f.pack(f.at({f.q, f.j}));
        f.last_word = RDom(((n + 63) / 64 - 1) * 8, 8, nm("last_word"));
        Expr q = f.last_word.x;
        Expr valid = clamp(n - q * 8, 0, 8);  // elements of byte q below n
        Expr mask = cast<uint8_t>(select(valid == 8, 255, (1 << valid) - 1));
        f.bytes(f.at({q, f.j})) = f.bytes(f.at({q, f.j})) & mask;
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

// A pass's two updates (the whole blocks, the last one) as vectors of `lanes`
// partial sums, the kSumLanes / lanes vectors unrolled inside the block loop.
inline void quantize_act_pass_schedule(Halide::Func sums, const Halide::Var &l, int lanes) {
    using namespace Halide;
    sums.vectorize(l, lanes);  // lanes divides kSumLanes (quantize_act_knobs_error)
    for (int u = 0; u < sums.num_update_definitions(); ++u) {
        Var lo("lo"), li("li");
        sums.update(u).split(l, lo, li, lanes).vectorize(li).unroll(lo);
    }
}

// The stages of one vector: the scalar stages and the tables once, the tables
// as short vectors over the 2^k combinations; each pass vectorized over its
// lanes, each level of its lane tree one vector. Storage on Halide's stack, not
// a heap allocation per stage and call.
inline void quantize_act_vector_stages_schedule(QuantizeActFuncs &f, int lanes) {
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
        f.sums[i].bound(l, 0, kSumLanes).compute_root().store_in(MemoryType::Stack);
        quantize_act_pass_schedule(f.sums[i], l, lanes);
    }
    for (size_t i = 0; i < f.trees.size(); ++i) {
        const Var &l = f.sum_lanes[i];
        int width = kSumLanes / 2;
        for (Func &level : f.trees[i]) {
            level.bound(l, 0, width).compute_root().store_in(MemoryType::Stack);
            if (width > 1) level.vectorize(l);
            width /= 2;
        }
    }
}

// The items per vector of the batched scalar stages: the f64 lanes of a 512-bit vector.
constexpr int kItemVector = 8;

// batched: every stage for all the items before the next. The stages between
// the passes over x (the lane trees, the scales, the solve, the tables) are a
// short chain of scalar work per item, the same operations in the same order
// for every item: vectorized over the items, kItemVector at a time (the codes
// stay those of one call per vector). The passes and their lane trees stay one
// item at a time, vectorized over the lanes; each pass's totals go out items
// innermost. Storage as above (the stack takes the heap past 16 KB, for large
// batches).
inline void quantize_act_batch_stages_schedule(QuantizeActFuncs &f, int lanes) {
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
    // Per item: a pass, then its lane tree (vectors over the lanes, as for one
    // vector), into the tree's last level: one total per item, items innermost,
    // which the scalar stages read as vectors.
    for (size_t i = 0; i < f.sums.size(); ++i) {
        const Var &l = f.sum_lanes[i];
        Func total = f.trees[i].back();
        total.bound(l, 0, 1).compute_root().store_in(MemoryType::Stack).reorder_storage(b, l);
        f.sums[i].bound(l, 0, kSumLanes).compute_at(total, b).store_in(MemoryType::Stack);
        quantize_act_pass_schedule(f.sums[i], l, lanes);
        int width = kSumLanes / 2;
        for (size_t v = 0; v + 1 < f.trees[i].size(); ++v, width /= 2)
            f.trees[i][v].compute_at(total, b).store_in(MemoryType::Stack).vectorize(l, width);
    }
}

inline void quantize_act_schedule(QuantizeActFuncs &f, const QuantizeActKnobs &kn) {
    using namespace Halide;
    if (f.batched)
        quantize_act_batch_stages_schedule(f, kn.lanes);
    else
        quantize_act_vector_stages_schedule(f, kn.lanes);
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
    f.codes.compute_at(f.bytes, w).vectorize(f.e, 64);
    f.bytes.update().vectorize(f.last_word.x);
}

}  // namespace amq::gen
