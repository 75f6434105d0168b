// Scalar references for the quantizers and the binary kernels. Conventions and
// exact semantics: see amq/reference.h. All arithmetic is in double (quantize_act:
// blocked f32 sums, as documented there).
#include "amq/reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace amq::ref {
namespace {

[[noreturn]] void fail(const char *fn, const std::string &what) {
    throw std::invalid_argument(std::string("amq::ref::") + fn + ": " + what);
}
void check_n(const char *fn, size_t n) {
    if (n == 0) fail(fn, "n = 0, expected n >= 1");
}
void check_k(const char *fn, const char *name, int k) {
    if (k < 1 || k > kMaxBits)
        fail(fn, std::string(name) + " = " + std::to_string(k) + " is out of range, expected 1.." +
                     std::to_string(kMaxBits));
}

int8_t sign(double r) { return r >= 0 ? 1 : -1; }  // sign(0) = sign(-0) = +1
double code_of(int s, int i) { return (s >> i & 1) ? 1.0 : -1.0; }

// Appends plane i to q from the residual r: b_i = sign(r), alpha_i = mean|r|.
void add_greedy_plane(const std::vector<double> &r, int i, Quantized &q) {
    double sum = 0;
    for (double v : r) sum += std::fabs(v);
    q.alpha[i] = sum / double(q.n);
    for (size_t e = 0; e < q.n; ++e) q.codes[i * q.n + e] = sign(r[e]);
}

// Minor of G over the rows and columns in two bit masks of equal popcount, by
// Laplace expansion along the first row, in wrapping (mod 2^128) arithmetic.
__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;
u128 minor_mod(const int64_t (&G)[kMaxBits][kMaxBits], unsigned rows, unsigned cols) {
    if (rows == 0) return 1;
    const int r = __builtin_ctz(rows);
    u128 d = 0;
    bool negate = false;
    for (int c = 0; c < kMaxBits; ++c) {
        if (!(cols >> c & 1)) continue;
        const u128 t = u128(i128(G[r][c])) * minor_mod(G, rows & (rows - 1), cols & ~(1u << c));
        d = negate ? d - t : d + t;
        negate = !negate;
    }
    return d;
}
double to_double(u128 v) { return double(i128(v)); }  // two's complement (GCC, Clang)

// alpha = G^-1 h = adj(G) h / det(G) with the exact integer cofactors; false
// (alpha untouched) when det(G) = 0. G is a Gram matrix of k <= kMaxBits
// planes of n < 2^32 codes, so |det G| <= n^k < 2^128 and det mod 2^128 is
// exact, as are the cofactors (|minor| <= n^(k-1) < 2^127).
bool solve_exact(const int64_t (&G)[kMaxBits][kMaxBits], const double *h, int k, double *alpha) {
    const unsigned all = (1u << k) - 1;
    const u128 det = minor_mod(G, all, all);
    if (det == 0) return false;
    double sol[kMaxBits];
    for (int i = 0; i < k; ++i) {
        double s = 0;
        for (int j = 0; j < k; ++j) {
            const double m = to_double(minor_mod(G, all & ~(1u << j), all & ~(1u << i)));
            s += ((i + j) % 2 ? -m : m) * h[j];
        }
        sol[i] = s / to_double(det);
    }
    std::copy(sol, sol + k, alpha);
    return true;
}

// The 2^k values v(s) = sum_i alpha_i (bit i of s ? +1 : -1) sorted as
// assign_codes documents: comb[r] is the combination at rank r, mid[m] the
// midpoint between ranks m and m + 1.
struct SortedLevels {
    std::vector<int> comb;
    std::vector<double> mid;
};
SortedLevels sorted_levels(const double *alpha, int k) {
    const int m = 1 << k;
    std::vector<double> v(m, 0.0);
    for (int s = 0; s < m; ++s)
        for (int i = 0; i < k; ++i) v[s] += alpha[i] * code_of(s, i);
    SortedLevels L{std::vector<int>(m), std::vector<double>(m - 1)};
    std::iota(L.comb.begin(), L.comb.end(), 0);  // by v(s) ascending, then s descending
    std::sort(L.comb.begin(), L.comb.end(),
              [&](int a, int b) { return v[a] != v[b] ? v[a] < v[b] : a > b; });
    for (int j = 0; j + 1 < m; ++j) L.mid[j] = (v[L.comb[j]] + v[L.comb[j + 1]]) / 2;
    return L;
}

// The sum over e < n of term(e) (a float) as quantize_act's passes take it:
// kActSumLanes partial sums in f32, then the halving tree in double.
template <typename Term>
double act_sum(size_t n, Term term) {
    constexpr size_t L = kActSumLanes;
    float part[L];
    std::fill(part, part + L, -0.0f);  // -0.0: a masked-off element adds nothing
    for (size_t e = 0; e < n; ++e) part[e % L] += term(e);
    double d[L / 2];
    for (size_t l = 0; l < L / 2; ++l) d[l] = double(part[l]) + double(part[l + L / 2]);
    for (size_t w = L / 4; w >= 1; w /= 2)
        for (size_t l = 0; l < w; ++l) d[l] = d[l] + d[l + w];
    return d[0];
}

// quantize_act for k <= 2: 2-means on |x|, as reference.h documents.
Quantized act_two_means(const float *x, size_t n, int k, int T) {
    Quantized q{k, n, std::vector<double>(k), std::vector<int8_t>(k * n)};
    const double nd = double(n);
    auto ax = [x](size_t e) { return std::fabs(x[e]); };
    const double S = act_sum(n, ax);
    double a[2] = {S / nd, 0.0};
    double m = a[0];  // code 1 = code 0 exactly for the |x| >= m
    if (k == 2) {
        auto outer = [&](double at) {  // the sum and the count of the |x| >= at
            const double U = act_sum(n, [&](size_t e) { return ax(e) >= at ? ax(e) : -0.0f; });
            int64_t C = 0;
            for (size_t e = 0; e < n; ++e) C += ax(e) >= at;
            return std::pair<double, int64_t>(U, C);
        };
        auto canonical = [&] {
            const double p = std::fabs(a[0]), r = std::fabs(a[1]);
            a[0] = std::max(p, r);
            a[1] = std::min(p, r);
        };
        auto [U, C] = outer(a[0]);
        a[1] = (2 * U - S - a[0] * (2 * double(C) - nd)) / nd;
        for (int t = 0; t < T; ++t) {
            canonical();
            m = a[0];  // the codes of this cycle: the output's when it is the last
            std::tie(U, C) = outer(m);
            const int64_t g = 2 * C - int64_t(n), det = int64_t(n) * int64_t(n) - g * g;
            if (det != 0) {  // singular: keep the scales
                const double gd = double(g), dd = double(det), h1 = 2 * U - S;
                const double s0 = (0.0 + nd * S + (-gd) * h1) / dd;
                a[1] = (0.0 + (-gd) * S + nd * h1) / dd;
                a[0] = s0;
            }
        }
    }
    for (int i = 0; i < k; ++i) q.alpha[i] = a[i];
    for (size_t e = 0; e < n; ++e) {
        const bool c0 = x[e] >= 0;
        q.codes[e] = c0 ? 1 : -1;
        if (k == 2) q.codes[n + e] = c0 == (double(ax(e)) >= m) ? 1 : -1;
    }
    return q;
}

}  // namespace

double Quantized::value(size_t e) const {
    double v = 0;
    for (int i = 0; i < k; ++i) v += alpha[i] * codes[i * n + e];
    return v;
}

double Quantized::sq_error(const float *x) const {
    double s = 0;
    for (size_t e = 0; e < n; ++e) {
        const double d = x[e] - value(e);
        s += d * d;
    }
    return s;
}

Quantized greedy(const float *x, size_t n, int k) {
    check_n("greedy", n);
    check_k("greedy", "k", k);
    Quantized q{k, n, std::vector<double>(k), std::vector<int8_t>(k * n)};
    std::vector<double> r(x, x + n);
    for (int i = 0; i < k; ++i) {
        add_greedy_plane(r, i, q);
        for (size_t e = 0; e < n; ++e) r[e] -= q.alpha[i] * q.codes[i * n + e];
    }
    return q;
}

double log_softmax(const float *x, size_t n, float *out) {
    check_n("log_softmax", n);
    double mx = x[0];
    for (size_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
    const double lse = mx + std::log(sum);
    for (size_t i = 0; i < n; ++i) out[i] = float(double(x[i]) - lse);
    return lse;
}

Quantized ternary(const float *x, size_t n) {
    check_n("ternary", n);
    Quantized q{2, n, std::vector<double>(2), std::vector<int8_t>(2 * n)};
    double mean_abs = 0;
    for (size_t e = 0; e < n; ++e) mean_abs += std::fabs(double(x[e]));
    const double threshold = 0.7 * mean_abs / double(n);
    double sum = 0;
    size_t count = 0;
    for (size_t e = 0; e < n; ++e)
        if (std::fabs(double(x[e])) > threshold) {
            sum += std::fabs(double(x[e]));
            ++count;
        }
    const double a = count ? double(float(sum / double(count))) : 0.0;
    q.alpha = {a / 2, a / 2};
    for (size_t e = 0; e < n; ++e) {
        const bool big = std::fabs(double(x[e])) > threshold;
        // +a: both +1; -a: both -1; 0: (+1, -1).
        q.codes[e] = !big || x[e] > 0 ? 1 : -1;
        q.codes[n + e] = big && x[e] > 0 ? 1 : -1;
    }
    return q;
}

void assign_codes(const float *x, size_t n, const double *alpha, int k, int8_t *codes) {
    check_n("assign_codes", n);
    check_k("assign_codes", "k", k);
    const int m = 1 << k;
    const SortedLevels L = sorted_levels(alpha, k);
    const std::vector<int> &order = L.comb;
    const std::vector<double> &mid = L.mid;
    for (size_t e = 0; e < n; ++e) {
        int rank = 0;  // number of midpoints strictly below x, in k comparisons
        for (int step = m / 2; step >= 1; step /= 2)
            if (double(x[e]) > mid[rank + step - 1]) rank += step;
        for (int i = 0; i < k; ++i) codes[i * n + e] = int8_t(code_of(order[rank], i));
    }
}

bool refit_scales(const float *x, size_t n, const int8_t *codes, int k, double *alpha) {
    check_n("refit_scales", n);
    check_k("refit_scales", "k", k);
    if (n > 0xFFFFFFFFull) fail("refit_scales", "n = " + std::to_string(n) + ", expected n < 2^32");
    int64_t G[kMaxBits][kMaxBits] = {};
    double h[kMaxBits] = {};
    for (int i = 0; i < k; ++i) {
        for (size_t e = 0; e < n; ++e) h[i] += codes[i * n + e] * double(x[e]);
        for (int j = 0; j <= i; ++j) {
            int64_t g = 0;
            for (size_t e = 0; e < n; ++e) g += codes[i * n + e] * codes[j * n + e];
            G[i][j] = G[j][i] = g;
        }
    }
    return solve_exact(G, h, k, alpha);
}

Quantized alternating(const float *x, size_t n, int k, int T) {
    if (T < 0)
        fail("alternating", "T = " + std::to_string(T) + " is out of range, expected T >= 0");
    Quantized q = greedy(x, n, k);
    for (int t = 0; t < T; ++t) {
        assign_codes(x, n, q.alpha.data(), k, q.codes.data());
        refit_scales(x, n, q.codes.data(), k, q.alpha.data());
    }
    return q;
}

Quantized quantize_act(const float *x, size_t n, int k, int T) {
    check_n("quantize_act", n);
    check_k("quantize_act", "k", k);
    if (T < 0)
        fail("quantize_act", "T = " + std::to_string(T) + " is out of range, expected T >= 0");
    if (n > 0xFFFFFFFFull) fail("quantize_act", "n = " + std::to_string(n) + ", expected n < 2^32");
    if (k <= 2) return act_two_means(x, n, k, T);
    Quantized q{k, n, std::vector<double>(k), std::vector<int8_t>(k * n)};
    // Greedy in f32.
    std::vector<float> r(x, x + n);
    const double xsum = act_sum(n, [&](size_t e) { return x[e]; });
    for (int i = 0; i < k; ++i) {
        q.alpha[i] = act_sum(n, [&](size_t e) { return std::fabs(r[e]); }) / double(n);
        const float a = float(q.alpha[i]);
        for (size_t e = 0; e < n; ++e) {
            q.codes[i * n + e] = r[e] >= 0 ? 1 : -1;
            r[e] = r[e] - (r[e] >= 0 ? a : -a);
        }
    }
    for (int t = 0; t < T; ++t) {
        assign_codes(x, n, q.alpha.data(), k, q.codes.data());
        int64_t G[kMaxBits][kMaxBits] = {};
        double h[kMaxBits] = {};
        for (int i = 0; i < k; ++i) {
            G[i][i] = int64_t(n);
            const int8_t *ci = &q.codes[i * n];
            h[i] = 2 * act_sum(n, [&](size_t e) { return ci[e] > 0 ? x[e] : -0.0f; }) - xsum;
            for (int j = 0; j < i; ++j) {
                const int8_t *cj = &q.codes[j * n];
                int64_t g = 0;
                for (size_t e = 0; e < n; ++e) g += ci[e] * cj[e];
                G[i][j] = G[j][i] = g;
            }
        }
        solve_exact(G, h, k, q.alpha.data());  // singular: keep the scales
    }
    return q;
}

Quantized refined(const float *x, size_t n, int k) {
    check_n("refined", n);
    check_k("refined", "k", k);
    Quantized q{k, n, std::vector<double>(k), std::vector<int8_t>(k * n)};
    std::vector<double> r(x, x + n);
    for (int i = 0; i < k; ++i) {
        add_greedy_plane(r, i, q);
        refit_scales(x, n, q.codes.data(), i + 1, q.alpha.data());  // singular: keep greedy
        for (size_t e = 0; e < n; ++e) {
            r[e] = x[e];
            for (int j = 0; j <= i; ++j) r[e] -= q.alpha[j] * q.codes[j * n + e];
        }
    }
    return q;
}

std::vector<uint64_t> pack_planes(const int8_t *codes, int planes, size_t rows, size_t n) {
    if (planes < 0) fail("pack_planes", "planes = " + std::to_string(planes) + ", expected >= 0");
    const size_t words = words_for(n);
    std::vector<uint64_t> out(size_t(planes) * rows * words, 0);
    for (size_t pr = 0; pr < size_t(planes) * rows; ++pr)
        for (size_t e = 0; e < n; ++e) {
            const int8_t c = codes[pr * n + e];
            if (c != 1 && c != -1)
                fail("pack_planes", "code " + std::to_string(c) + " at index " +
                                        std::to_string(pr * n + e) + ", expected +1 or -1");
            if (c == 1) out[pr * words + e / 64] |= uint64_t(1) << (e % 64);
        }
    return out;
}

void unpack_row(const uint64_t *words, size_t n, int8_t *codes) {
    for (size_t e = 0; e < n; ++e) codes[e] = (words[e / 64] >> (e % 64) & 1) ? 1 : -1;
}

double binary_dot(const uint64_t *b, size_t plane_stride, const double *alpha, int k_w,
                  const uint64_t *c, const double *beta, int k_a, size_t n) {
    check_n("binary_dot", n);
    check_k("binary_dot", "k_w", k_w);
    check_k("binary_dot", "k_a", k_a);
    const size_t words = words_for(n);
    double acc = 0;
    for (int i = 0; i < k_w; ++i)
        for (int j = 0; j < k_a; ++j) {
            int64_t pop = 0;
            for (size_t w = 0; w < words; ++w)
                pop += __builtin_popcountll(b[i * plane_stride + w] ^ c[j * words + w]);
            acc += alpha[i] * beta[j] * double(int64_t(n) - 2 * pop);
        }
    return acc;
}

std::vector<double> binary_gemv(const uint64_t *W, const float *alpha, int k_w, size_t rows,
                                const uint64_t *A, const float *beta, int k_a, size_t n,
                                const float *bias) {
    check_n("binary_gemv", n);
    check_k("binary_gemv", "k_w", k_w);
    check_k("binary_gemv", "k_a", k_a);
    const size_t words = words_for(n);
    double bt[kMaxBits], al[kMaxBits];
    std::copy(beta, beta + k_a, bt);
    std::vector<double> y(rows);
    for (size_t r = 0; r < rows; ++r) {
        std::copy(alpha + r * k_w, alpha + (r + 1) * k_w, al);
        y[r] = (bias ? double(bias[r]) : 0.0) +
               binary_dot(W + r * words, rows * words, al, k_w, A, bt, k_a, n);
    }
    return y;
}

std::vector<double> float_gemv(const float *M, size_t rows, size_t cols, const float *x,
                               const float *bias, std::vector<double> *scale) {
    std::vector<double> y(rows);
    if (scale) scale->assign(rows, 0.0);
    for (size_t r = 0; r < rows; ++r) {
        double s = bias ? double(bias[r]) : 0.0, a = std::abs(s);
        for (size_t c = 0; c < cols; ++c) {
            const double t = double(M[r * cols + c]) * double(x[c]);
            s += t;
            a += std::abs(t);
        }
        y[r] = s;
        if (scale) (*scale)[r] = a;
    }
    return y;
}

}  // namespace amq::ref
