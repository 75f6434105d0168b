// quantize_act: online k-bit quantization of an activation vector, every step.
//
// Greedy init, then T alternating cycles {optimal codes for fixed scales by
// comparison with the midpoints of the sorted 2^k values; least-squares refit of
// the scales}, exactly as amq::ref::alternating (quantize/reference.h), whose
// conventions (double arithmetic, tie breaks, singular fallback) it follows.
//
// Buffers:
//   x(e)          f32  input, n >= 1 values, buffer padded to a multiple of 64
//                      (the padding is read but never counted)
//   n             i32  true length
//   bytes(q, j)   u8   packed planes as bytes: q in [0, 8 * words); the memory of
//                      a [k][words] u64 array (little-endian), padding bits 0
//   beta(j)       f32  scales
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "Halide.h"

namespace amq::gen {

struct QuantizeActKnobs {
    int lanes = 8;         // vector lanes of the f64 reductions and the code pass
    int pack_vector = 16;  // vector lanes of the byte packing
};

struct QuantizeActFuncs {
    std::vector<Halide::Func> scalars;  // per-stage scale tuples, compute_root
    std::vector<Halide::Func> codes;    // per-cycle codes (combination index s), compute_root
    std::vector<Halide::Func> sums;     // reductions, compute_root, rfactored
    std::vector<Halide::RVar> sum_lanes;
    Halide::Func bytes, beta;
    Halide::Var e{"e"}, q{"q"}, j{"j"};
};

namespace detail {

// A double constant (Halide's Expr(double) is ambiguous).
inline Halide::Expr f64(double v) { return Halide::Internal::make_const(Halide::Float(64), v); }

// Masked sums over e in [0, n) of each term(e), in one pass, laid out as
// [blocks][lanes] over the padded input so that the lanes vectorize (rfactor)
// with dense loads and no tail. The result is a Tuple, element t the sum of
// term t (one term is padded with a dummy so that it is always a Tuple).
inline Halide::Func masked_sums(const std::string &name, Halide::Expr n, int lanes,
                                const std::vector<std::function<Halide::Expr(Halide::Expr)>> &terms,
                                QuantizeActFuncs &f) {
    using namespace Halide;
    RDom rr(0, lanes, 0, (n + lanes - 1) / lanes, name + "_r");
    Expr e = rr.y * lanes + rr.x;
    std::vector<Expr> init, upd;
    Func s(name);
    for (size_t t = 0; t < terms.size(); ++t) {
        Expr v = terms[t](e);
        init.push_back(Internal::make_zero(v.type()));
    }
    if (init.size() == 1) init.push_back(Internal::make_zero(init[0].type()));
    s() = Tuple(init);
    for (size_t t = 0; t < terms.size(); ++t)
        upd.push_back(s()[int(t)] +
                      select(e < n, terms[t](e), Internal::make_zero(init[t].type())));
    if (upd.size() == 1) upd.push_back(s()[1]);
    s() = Tuple(upd);
    f.sums.push_back(s);
    f.sum_lanes.push_back(rr.x);
    return s;
}

inline Halide::Expr bit_of(Halide::Expr s, int i) { return ((s >> i) & 1) == 1; }

}  // namespace detail

inline QuantizeActFuncs quantize_act_algorithm(Halide::Func x, Halide::Expr n, int k, int T,
                                               int lanes) {
    using namespace Halide;
    QuantizeActFuncs f;
    Expr nd = cast<double>(n);
    auto xd = [&](Expr e) { return cast<double>(x(e)); };

    // Greedy: r_0 = x; alpha_i = mean |r_i|; b_i = r_i >= 0; r_{i+1} = r_i - alpha_i b_i.
    std::vector<Expr> alpha;
    for (int i = 0; i < k; ++i) {
        auto resid = [&, i](Expr e) {
            Expr r = xd(e);
            for (int p = 0; p < i; ++p) r = r - select(r >= detail::f64(0), alpha[p], -alpha[p]);
            return r;
        };
        Func s = detail::masked_sums("greedy_abs" + std::to_string(i), n, lanes,
                                     {[&](Expr e) { return abs(resid(e)); }}, f);
        Func a("greedy_alpha" + std::to_string(i));
        a() = s()[0] / nd;
        f.scalars.push_back(a);
        alpha.push_back(a());
    }

    const int S = 1 << k;
    Func codes_last;
    for (int c = 0; c < T; ++c) {
        std::string cs = std::to_string(c);
        // Sorted values (by value, then s descending) and their combination indices.
        std::vector<Expr> v(S);
        for (int s = 0; s < S; ++s) {
            Expr val = detail::f64(0);
            for (int i = 0; i < k; ++i) val = val + ((s >> i) & 1 ? alpha[i] : -alpha[i]);
            v[s] = val;
        }
        std::vector<Expr> rank(S);
        for (int s = 0; s < S; ++s) {
            Expr rk = 0;
            for (int o = 0; o < S; ++o) {
                if (o == s) continue;
                Expr before = (o > s) ? (v[o] <= v[s]) : (v[o] < v[s]);
                rk = rk + select(before, 1, 0);
            }
            rank[s] = rk;
        }
        std::vector<Expr> table;  // sorted values then sorted combination indices
        for (int m = 0; m < S; ++m) {
            Expr sv = detail::f64(0), si = 0;
            for (int s = 0; s < S; ++s) {
                sv = sv + select(rank[s] == m, v[s], detail::f64(0));
                si = si + select(rank[s] == m, s, 0);
            }
            table.push_back(sv);
            table.push_back(si);
        }
        Func sorted("sorted" + cs);
        sorted() = Tuple(table);
        f.scalars.push_back(sorted);

        // Codes: s_e = sorted index at rank #(x > mid_m).
        Func codes("codes" + cs);
        {
            Expr xe = xd(f.e);
            Expr s_e = cast<uint8_t>(sorted()[1]);
            for (int m = 0; m + 1 < S; ++m) {
                Expr mid = (sorted()[2 * m] + sorted()[2 * m + 2]) / detail::f64(2);
                s_e = select(xe > mid, cast<uint8_t>(sorted()[2 * m + 3]), s_e);
            }
            codes(f.e) = s_e;
        }
        f.codes.push_back(codes);
        codes_last = codes;

        // Refit: G alpha = h with G_ij = sum b_i b_j (integers), h_i = sum b_i x,
        // all summed in one pass (a tuple reduction).
        std::vector<Expr> h(k);
        std::vector<std::vector<Expr>> G(k, std::vector<Expr>(k));
        {
            std::vector<std::function<Expr(Expr)>> terms;
            for (int i = 0; i < k; ++i)
                terms.push_back(
                    [&, i](Expr e) { return select(detail::bit_of(codes(e), i), xd(e), -xd(e)); });
            for (int i = 0; i < k; ++i)
                for (int jx = 0; jx < i; ++jx)
                    terms.push_back([&, i, jx](Expr e) {
                        return select(detail::bit_of(codes(e), i) == detail::bit_of(codes(e), jx),
                                      detail::f64(1), detail::f64(-1));
                    });
            Func sums = detail::masked_sums("refit" + cs, n, lanes, terms, f);
            int idx = 0;
            for (int i = 0; i < k; ++i) h[i] = sums()[idx++];
            for (int i = 0; i < k; ++i) {
                G[i][i] = nd;
                for (int jx = 0; jx < i; ++jx) G[i][jx] = G[jx][i] = sums()[idx++];
            }
        }
        // Gaussian elimination in natural order (G is a Gram matrix: SPD unless
        // singular). Singular when a pivot is <= 1e-9 n: keep the previous scales.
        Expr ok = Internal::const_true();
        for (int p = 0; p < k; ++p) {
            ok = ok && (G[p][p] > detail::f64(1e-9) * nd);
            for (int r = p + 1; r < k; ++r) {
                Expr fct = G[r][p] / G[p][p];
                for (int cc = p; cc < k; ++cc) G[r][cc] = G[r][cc] - fct * G[p][cc];
                h[r] = h[r] - fct * h[p];
            }
        }
        std::vector<Expr> sol(k);
        for (int p = k - 1; p >= 0; --p) {
            Expr acc = h[p];
            for (int cc = p + 1; cc < k; ++cc) acc = acc - G[p][cc] * sol[cc];
            sol[p] = acc / G[p][p];
        }
        Func a("alt_alpha" + cs);
        std::vector<Expr> next(k);
        for (int i = 0; i < k; ++i) next[i] = select(ok, sol[i], alpha[i]);
        a() = k == 1 ? Tuple(next[0], next[0]) : Tuple(next);
        f.scalars.push_back(a);
        for (int i = 0; i < k; ++i) alpha[i] = a()[i];
    }

    if (T == 0) {
        // Greedy codes: sign of each residual.
        Func codes("codes_greedy");
        Expr r = xd(f.e);
        Expr s_e = cast<uint8_t>(0);
        for (int i = 0; i < k; ++i) {
            s_e = s_e | select(r >= detail::f64(0), cast<uint8_t>(1 << i), cast<uint8_t>(0));
            r = r - select(r >= detail::f64(0), alpha[i], -alpha[i]);
        }
        codes(f.e) = s_e;
        f.codes.push_back(codes);
        codes_last = codes;
    }

    // Pack: byte q of plane j holds elements 8q .. 8q+7.
    {
        Expr acc = cast<uint8_t>(0);
        for (int b = 0; b < 8; ++b) {
            Expr e = f.q * 8 + b;
            Expr s_e = codes_last(e);
            Expr on = e < n && ((s_e >> cast<uint8_t>(f.j)) & 1) == 1;
            acc = acc | select(on, cast<uint8_t>(1 << b), cast<uint8_t>(0));
        }
        f.bytes = Func("bytes");
        f.bytes(f.q, f.j) = acc;
    }
    f.beta = Func("beta");
    Expr bj = cast<float>(alpha[k - 1]);
    for (int i = k - 2; i >= 0; --i) bj = select(f.j == i, cast<float>(alpha[i]), bj);
    f.beta(f.j) = bj;
    return f;
}

inline void quantize_act_schedule(QuantizeActFuncs &f, const QuantizeActKnobs &kn) {
    using namespace Halide;
    for (auto &s : f.scalars) s.compute_root();
    for (auto &c : f.codes)
        c.compute_root().vectorize(f.e, kn.lanes * 2, TailStrategy::GuardWithIf);
    for (size_t i = 0; i < f.sums.size(); ++i) {
        Var u("u");
        Func intm = f.sums[i].update().rfactor(f.sum_lanes[i], u);
        intm.compute_root().vectorize(u).update().vectorize(u);
        f.sums[i].compute_root();
    }
    f.bytes.vectorize(f.q, kn.pack_vector, TailStrategy::GuardWithIf);
}

}  // namespace amq::gen
