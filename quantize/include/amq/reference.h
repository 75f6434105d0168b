// Scalar references for everything the Halide kernels compute.
//
// Short and plain on purpose: every kernel test compares against these, so they
// must be easy to read and obviously right. No Halide, no project dependencies.
//
// Conventions (shared with the kernels, see ../shared/DESIGN.md):
//   * codes are +1 / -1 stored as int8_t; sign(0) = +1;
//   * a quantized vector of length n with k planes has codes [k][n] (plane-major)
//     and scales alpha[k]; value_e = sum_i alpha_i * code_i[e];
//   * packed planes: 64 codes per uint64 word, bit e%64 of word e/64 is element e,
//     bit 1 = +1, padding bits 0;
//   * combination index s in [0, 2^k): bit i of s set <=> code_i = +1.
//   * all arithmetic is in double; sums over elements run e = 0..n-1 in order
//     (quantize_act: f32 blocked sums, as documented there).
//   * errors: n == 0, a bit count (k, k_w, k_a) outside 1..kMaxBits or T < 0 throw
//     std::invalid_argument with a message naming the function and the argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amq::ref {

constexpr int kMaxBits = 4;

// Number of 64-bit words that hold n codes.
inline size_t words_for(size_t n) { return (n + 63) / 64; }

// The bits of the last of those words that hold elements (the rest is padding, 0).
inline uint64_t last_word_mask(size_t n) { return (n % 64) ? (~0ull >> (64 - n % 64)) : ~0ull; }

struct Quantized {
    int k = 0;
    size_t n = 0;
    std::vector<double> alpha;  // [k]
    std::vector<int8_t> codes;  // [k][n], +1 / -1
    double value(size_t e) const;
    // ||x - q||^2 over the n elements.
    double sq_error(const float *x) const;
};

// Greedy: r = x; for i: b_i = sign(r); alpha_i = mean|r|; r -= alpha_i b_i
// (b_i is taken from r before the subtraction).
// A zero vector gives alpha all 0 and codes all +1; a constant vector is exact.
Quantized greedy(const float *x, size_t n, int k);

// For fixed alpha: every element takes the nearest of the 2^k values
// sum_i alpha_i s_i, found by binary search over the midpoints of the sorted
// values. Equal values are ordered by combination index s, larger s first; an
// element exactly on a midpoint takes the lower value.
// Precisely: v(s) = sum_i alpha_i (bit i of s ? +1 : -1); sort s by v(s)
// ascending, then s descending; mid_m = (v_sorted[m] + v_sorted[m+1]) / 2; x takes
// the s at rank #{m : x > mid_m}. Consequence: when all alphas are 0 (every
// v(s) = 0) every element takes s = 2^k - 1, i.e. codes all +1, as greedy's
// sign(0) = +1.
void assign_codes(const float *x, size_t n, const double *alpha, int k, int8_t *codes);

// For fixed codes: alpha = (B^T B)^-1 B^T x. B^T B is an integer matrix; when its
// determinant is exactly 0 (singular, e.g. two equal planes) alpha is left as it
// was and false is returned. `codes` holds the k planes [k][n]; k may be less than
// the k of the quantized vector (refined() refits the first i+1 planes).
// The determinant and the cofactors are computed exactly in 128-bit integers
// (valid for n < 2^32, larger n throws); alpha = adj(G) h / det(G) in double,
// with h = B^T x. (The Halide quantize_act solves by elimination in double and
// treats a pivot <= 1e-9 n as singular: the same decision except for nearly
// singular G, where both keep scales within rounding of each other.)
bool refit_scales(const float *x, size_t n, const int8_t *codes, int k, double *alpha);

// Alternating: greedy init, then T cycles of {assign_codes, refit_scales}.
// T = 0 is greedy. The error never increases from one step to the next.
// A zero vector gives alpha all 0 and codes all +1 (see assign_codes); a
// constant vector is exact.
Quantized alternating(const float *x, size_t n, int k, int T);

// The runtime's activation quantizer (the quantize_act kernels and the fused
// step kernels give exactly its codes): alternating, with the sums over the
// elements taken in f32 in a fixed blocked order so that the kernels can run
// them as f32 vectors. Every sum over e < n of a float term t(e) is
// kActSumLanes partial sums in f32, P_l = t(l) + t(l + L) + t(l + 2L) + .. in
// that order (L = kActSumLanes), then a halving tree in double: D_l = P_l +
// P_{l+L/2} for l < L/2, then D_l = D_l + D_{l+w} for w = L/4, .., 1; the sum
// is D_0. Counts are exact.
// k <= 2, where the values +-a_0 +-a_1 are symmetric about 0 (alternating as
// 2-means on |x|): S = sum |x|, a_0 = S / n; k = 1: code sign(x) (+1 at +-0),
// and cycles change nothing. k = 2: at a threshold m, U = sum and C = count of
// the |x| >= m;
//   greedy: a_1 = (2 U - S - a_0 (2 C - n)) / n at m = a_0 (mean ||x| - a_0|);
//   cycle: (a_0, a_1) = (max, min) of (|a_0|, |a_1|) (the same values), m =
//     a_0; then with g = 2 C - n, det = n^2 - g^2 (integers), h_1 = 2 U - S:
//     a_0 = (0 + n S + (-g) h_1) / det, a_1 = (0 + (-g) S + n h_1) / det (the
//     least-squares fit of the codes below); det = 0 (all |x| >= m, or none)
//     keeps the scales;
//   codes: code 0 = sign(x) (+1 at +-0), code 1 = code 0 exactly where |x| >=
//     m (the nearest value; ties outward), m of the last cycle (greedy's a_0
//     for T = 0).
// k >= 3, otherwise as alternating():
//   greedy: r = x in f32; plane i: alpha_i = sum |r| / n, b_i = sign(r),
//     r = r - float(alpha_i) b_i (f32; sum x is taken in the first pass);
//   cycle: the codes of assign_codes() for the current alpha; then h'_i = sum
//     of the x with code_i = +1, h_i = 2 h'_i - sum x, G_ij = sum_e code_i
//     code_j; alpha = G^-1 h as refit_scales() (exact cofactors; singular: keep).
// The error is alternating()'s up to the rounding of the f32 sums and ties.
// T = 0 gives the greedy codes and scales. A zero vector gives alpha all 0 and
// codes all +1; a constant vector is exact up to the rounding of its f32 sums.
// The Halide kernels solve k >= 3 by elimination (see refit_scales), so their
// scales agree to rounding there.
constexpr size_t kActSumLanes = 32;
Quantized quantize_act(const float *x, size_t n, int k, int T);

// Refined greedy: greedy, but after each new plane all scales so far are refit
// by least squares and the residual is recomputed from them.
// Plane i: b_i = sign(r), alpha_i = mean|r|, then refit_scales on planes 0..i
// (when singular the scales stay as they were, alpha_i = mean|r|), then
// r_e = x_e - sum_{j<=i} alpha_j b_j[e].
Quantized refined(const float *x, size_t n, int k);

// Ternary (HitNet style), for weight rows (method ternary) and activation vectors
// (act_method ternary) alike: t = 0.7 (sum_e |x_e|) / n; a = mean |x_e| over
// |x_e| > t, rounded to float (0 if none); k = 2 planes, alpha = {a/2, a/2};
// x_e > t codes (+1, +1), x_e < -t codes (-1, -1), else (+1, -1) (value 0).
Quantized ternary(const float *x, size_t n);

// out[i] = x[i] - log(sum_j exp(x[j])) over n values, in double, shifted by the
// max; returns the log-sum-exp. out may be x.
double log_softmax(const float *x, size_t n, float *out);

// Packs codes [planes][rows][n] (+1/-1) into words [planes][rows][words_for(n)].
// Any code other than +1 / -1 throws std::invalid_argument. n == 0 is allowed
// (no words).
std::vector<uint64_t> pack_planes(const int8_t *codes, int planes, size_t rows, size_t n);

// Unpacks one packed row of n codes back to +1/-1.
void unpack_row(const uint64_t *words, size_t n, int8_t *codes);

// Multi-bit binary dot product of one weight row with one activation vector:
//   sum_i sum_j alpha_i beta_j (n - 2 popcount(b_i XOR c_j))
// b: k_w planes of `words` words each (plane stride `plane_stride` words),
// c: k_a planes of `words` words each (consecutive).
// words = words_for(n). Padding bits must agree in b and c (both 0 in the
// packed format); the sum over (i, j) runs i outer, j inner.
double binary_dot(const uint64_t *b, size_t plane_stride, const double *alpha, int k_w,
                  const uint64_t *c, const double *beta, int k_a, size_t n);

// y[r] = bias[r] + binary_dot(row r) for weights in the model-file layout
// W [k_w][rows][words], alpha [rows][k_w], activations [k_a][words], beta [k_a].
// bias may be null.
std::vector<double> binary_gemv(const uint64_t *W, const float *alpha, int k_w, size_t rows,
                                const uint64_t *A, const float *beta, int k_a, size_t n,
                                const float *bias);

// The float product in double: y[r] = bias[r] + sum_c M[r][c] x[c], M row-major
// [rows][cols], bias may be null. With `scale`, also per row the sum of the
// absolute terms (what a float kernel's rounding error is relative to).
std::vector<double> float_gemv(const float *M, size_t rows, size_t cols, const float *x,
                               const float *bias, std::vector<double> *scale = nullptr);

}  // namespace amq::ref
