// Tests of the scalar references in quantize/ (amq/reference.h): every kernel test
// compares against these, so they are checked here against brute force, against
// plain dequantized arithmetic and against the properties the paper states.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "amq/reference.h"
#include "amq/spec.h"
#include "amq/timing.h"

namespace {

using amq::ref::Quantized;

enum class Dist { Normal, Cauchy, StudentT };
const Dist kDists[] = {Dist::Normal, Dist::Cauchy, Dist::StudentT};
const char *name(Dist d) {
    return d == Dist::Normal ? "normal" : d == Dist::Cauchy ? "cauchy" : "student-t(1.5)";
}

std::vector<float> random_vector(size_t n, Dist d, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::cauchy_distribution<float> cauchy(0.f, 1.f);
    std::student_t_distribution<float> student(1.5f);
    std::vector<float> x(n);
    for (auto &v : x)
        v = d == Dist::Normal ? normal(rng) : d == Dist::Cauchy ? cauchy(rng) : student(rng);
    return x;
}

std::vector<int8_t> random_codes(size_t count, std::mt19937 &rng) {
    std::vector<int8_t> c(count);
    for (auto &v : c) v = (rng() & 1) ? 1 : -1;
    return c;
}

double sq_norm(const std::vector<float> &x) {
    double s = 0;
    for (float v : x) s += double(v) * v;
    return s;
}

// The value a combination s stands for, summed in the same order as the reference.
double combo_value(const double *alpha, int k, int s) {
    double v = 0;
    for (int i = 0; i < k; ++i) v += alpha[i] * ((s >> i & 1) ? 1.0 : -1.0);
    return v;
}

double code_value(const int8_t *codes, size_t n, size_t e, const double *alpha, int k) {
    double v = 0;
    for (int i = 0; i < k; ++i) v += alpha[i] * codes[i * n + e];
    return v;
}

// Checks assign_codes against a brute force over all 2^k combinations: the nearest
// value, ties in distance going to the lower value. Values must agree exactly;
// codes must agree wherever a single combination is nearest.
void expect_assign_matches_brute_force(const std::vector<float> &x, const double *alpha, int k) {
    const size_t n = x.size();
    std::vector<int8_t> codes(k * n);
    amq::ref::assign_codes(x.data(), n, alpha, k, codes.data());
    for (size_t e = 0; e < n; ++e) {
        int best = 0, winners = 0;
        double best_d = INFINITY;
        for (int s = 0; s < (1 << k); ++s) {
            const double v = combo_value(alpha, k, s), d = std::fabs(x[e] - v);
            if (d < best_d || (d == best_d && v < combo_value(alpha, k, best))) best = s;
            if (d < best_d) winners = 0;
            if (d <= best_d) best_d = d, ++winners;
        }
        const double got = code_value(codes.data(), n, e, alpha, k);
        ASSERT_EQ(got, combo_value(alpha, k, best))
            << "k=" << k << " e=" << e << " x=" << x[e] << " alpha0=" << alpha[0];
        if (winners == 1) {
            for (int i = 0; i < k; ++i)
                ASSERT_EQ(codes[i * n + e], (best >> i & 1) ? 1 : -1) << "k=" << k << " e=" << e;
        }
    }
}

TEST(RefAssignCodes, MatchesBruteForceRandomScales) {
    std::mt19937 rng(1234);
    std::normal_distribution<double> normal(0.0, 1.0);
    const auto x = random_vector(2000, Dist::Normal, 99);
    for (int k = 1; k <= amq::ref::kMaxBits; ++k)
        for (int trial = 0; trial < 200; ++trial) {
            double alpha[amq::ref::kMaxBits];
            for (int i = 0; i < k; ++i) {
                const unsigned kind = rng() % 8;  // mostly random, some 0, some equal
                alpha[i] = kind == 0 ? 0.0 : (kind == 1 && i > 0) ? alpha[i - 1] : normal(rng);
            }
            expect_assign_matches_brute_force(x, alpha, k);
        }
}

TEST(RefAssignCodes, MatchesBruteForceExactTies) {
    // Dyadic scales: every value and midpoint is exact, so elements placed exactly on
    // values and midpoints test the tie rules (lower value on a midpoint).
    const double pool[] = {-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5};
    std::mt19937 rng(77);
    for (int k = 1; k <= amq::ref::kMaxBits; ++k)
        for (int trial = 0; trial < 300; ++trial) {
            double alpha[amq::ref::kMaxBits];
            for (int i = 0; i < k; ++i) alpha[i] = pool[rng() % 8];
            std::vector<float> x;
            for (int s = 0; s < (1 << k); ++s)
                for (int t = 0; t < (1 << k); ++t) {
                    const double a = combo_value(alpha, k, s), b = combo_value(alpha, k, t);
                    x.push_back(float(a));
                    x.push_back(float((a + b) / 2));
                    x.push_back(float(a + 0.125));
                }
            x.push_back(-100.f);
            x.push_back(100.f);
            expect_assign_matches_brute_force(x, alpha, k);
        }
}

TEST(RefAssignCodes, MidpointTakesLowerValue) {
    const double alpha[2] = {1.0, 0.5};  // values -1.5, -0.5, 0.5, 1.5 (s = 0, 1, 2, 3)
    const std::vector<float> x = {-1.f, 0.f, 1.f, -1.0001f, 0.0001f};
    std::vector<int8_t> c(2 * x.size());
    amq::ref::assign_codes(x.data(), x.size(), alpha, 2, c.data());
    const double want[] = {-1.5, -0.5, 0.5, -1.5, 0.5};
    for (size_t e = 0; e < x.size(); ++e)
        EXPECT_EQ(code_value(c.data(), x.size(), e, alpha, 2), want[e]) << "x=" << x[e];
}

TEST(RefAssignCodes, EqualValuesOrderedByCombination) {
    // alpha = (1, 1): sorted (value, s) = (-2, 0), (0, 2), (0, 1), (2, 3); midpoints
    // -1, 0, 1. x = 0 sits on the middle midpoint -> rank 1 -> s = 2 (b0 = -1,
    // b1 = +1); x = 0.5 and x = 1 (on a midpoint) -> rank 2 -> s = 1 (b0 = +1, b1 = -1);
    // x = -1 -> s = 0.
    const double alpha[2] = {1.0, 1.0};
    const std::vector<float> x = {0.f, 0.5f, -1.f, 1.f};
    std::vector<int8_t> c(8);
    amq::ref::assign_codes(x.data(), 4, alpha, 2, c.data());
    EXPECT_EQ(c, (std::vector<int8_t>{-1, 1, -1, 1, /* plane 1 */ 1, -1, -1, -1}));
}

TEST(RefGreedy, HandExample) {
    const std::vector<float> x = {1.f, -3.f};
    const Quantized q = amq::ref::greedy(x.data(), 2, 2);
    // r = (1,-3): alpha0 = 2, b0 = (+,-); r = (-1,-1): alpha1 = 1, b1 = (-,-); r = 0.
    EXPECT_EQ(q.alpha, (std::vector<double>{2.0, 1.0}));
    EXPECT_EQ(q.codes, (std::vector<int8_t>{1, -1, -1, -1}));
    EXPECT_EQ(q.sq_error(x.data()), 0.0);
    EXPECT_EQ(q.value(0), 1.0);
    EXPECT_EQ(q.value(1), -3.0);
}

TEST(RefAlternating, NeverWorseThanGreedy) {
    for (Dist d : kDists)
        for (size_t n : amq::spec::act_lengths)
            for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
                const auto x = random_vector(n, d, uint32_t(n * 10 + k));
                const double tol = 1e-12 * sq_norm(x);
                const double g = amq::ref::greedy(x.data(), n, k).sq_error(x.data());
                for (int T : {1, 2, 5}) {
                    const double a = amq::ref::alternating(x.data(), n, k, T).sq_error(x.data());
                    EXPECT_LE(a, g + tol) << name(d) << " n=" << n << " k=" << k << " T=" << T;
                }
                const double r = amq::ref::refined(x.data(), n, k).sq_error(x.data());
                EXPECT_LE(r, g + tol) << "refined " << name(d) << " n=" << n << " k=" << k;
            }
}

TEST(RefAlternating, StrictlyBetterOnGaussianData) {
    // The paper's point: for k >= 2 alternating (and refined) beat greedy clearly.
    const auto x = random_vector(4097, Dist::Normal, 5);
    for (int k = 2; k <= amq::ref::kMaxBits; ++k) {
        const double g = amq::ref::greedy(x.data(), x.size(), k).sq_error(x.data());
        const double a = amq::ref::alternating(x.data(), x.size(), k, 2).sq_error(x.data());
        const double r = amq::ref::refined(x.data(), x.size(), k).sq_error(x.data());
        EXPECT_LT(a, 0.95 * g) << "k=" << k;
        EXPECT_LT(r, g * (1 - 1e-6)) << "k=" << k;
        EXPECT_LT(a, r) << "k=" << k;
    }
}

TEST(RefAlternating, MonotoneDescentStepByStep) {
    for (Dist d : kDists)
        for (size_t n : amq::spec::act_lengths)
            for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
                const auto x = random_vector(n, d, uint32_t(7 * n + k));
                const double tol = 1e-12 * sq_norm(x);
                Quantized q = amq::ref::greedy(x.data(), n, k);
                double err = q.sq_error(x.data());
                const int T = 6;
                for (int t = 0; t < T; ++t) {
                    amq::ref::assign_codes(x.data(), n, q.alpha.data(), k, q.codes.data());
                    const double after_assign = q.sq_error(x.data());
                    EXPECT_LE(after_assign, err + tol) << name(d) << " n=" << n << " k=" << k;
                    amq::ref::refit_scales(x.data(), n, q.codes.data(), k, q.alpha.data());
                    err = q.sq_error(x.data());
                    EXPECT_LE(err, after_assign + tol) << name(d) << " n=" << n << " k=" << k;
                }
                // alternating() is exactly this loop.
                const Quantized a = amq::ref::alternating(x.data(), n, k, T);
                EXPECT_EQ(a.alpha, q.alpha) << name(d) << " n=" << n << " k=" << k;
                EXPECT_EQ(a.codes, q.codes) << name(d) << " n=" << n << " k=" << k;
            }
}

TEST(RefAlternating, ZeroTIsGreedy) {
    const auto x = random_vector(300, Dist::Normal, 3);
    for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
        const Quantized g = amq::ref::greedy(x.data(), x.size(), k);
        const Quantized a = amq::ref::alternating(x.data(), x.size(), k, 0);
        EXPECT_EQ(a.alpha, g.alpha);
        EXPECT_EQ(a.codes, g.codes);
    }
}

// ref::quantize_act is alternating with blocked f32 sums: on every distribution,
// length and bit count its error is alternating's to within the f32 sums'
// rounding, and its greedy start is greedy's.
TEST(RefQuantizeAct, AlternatingToWithinF32Sums) {
    for (Dist d : kDists)
        for (size_t n : amq::spec::act_lengths)
            for (int k = 1; k <= amq::ref::kMaxBits; ++k)
                for (int T : {0, 1, 2, 3}) {
                    const auto x = random_vector(n, d, uint32_t(11 * n + 3 * k + T));
                    const double a = amq::ref::alternating(x.data(), n, k, T).sq_error(x.data());
                    const double q = amq::ref::quantize_act(x.data(), n, k, T).sq_error(x.data());
                    EXPECT_NEAR(q, a, 1e-4 * a + 1e-6 * sq_norm(x))
                        << name(d) << " n=" << n << " k=" << k << " T=" << T;
                }
}

// k = 2, cycle T: the scales out are the means of the |x| on either side of its
// threshold m (a_0 + a_1 over the |x| >= m, a_0 - a_1 below), the codes those
// of the nearest value, and m is a_0 of the scales after T - 1 cycles, made
// canonical (max, min of their magnitudes).
void expect_two_means_cycle(const std::vector<float> &x, int T, double tol,
                            const std::string &what) {
    const size_t n = x.size();
    const Quantized prev = amq::ref::quantize_act(x.data(), n, 2, T - 1);
    const double m = std::max(std::fabs(prev.alpha[0]), std::fabs(prev.alpha[1]));
    const Quantized q = amq::ref::quantize_act(x.data(), n, 2, T);
    double out_sum = 0, in_sum = 0;
    size_t out_n = 0;
    for (size_t e = 0; e < n; ++e) {
        const double a = std::fabs(double(x[e]));
        const bool outer = a >= m;
        (outer ? out_sum : in_sum) += a;
        out_n += outer;
        ASSERT_EQ(q.codes[e], x[e] >= 0 ? 1 : -1) << what << " e=" << e;
        ASSERT_EQ(q.codes[n + e], outer ? q.codes[e] : -q.codes[e])
            << what << " T=" << T << " e=" << e;
    }
    ASSERT_GT(out_n, 0u) << what;
    ASSERT_LT(out_n, n) << what;
    const double hi = out_sum / double(out_n), lo = in_sum / double(n - out_n);
    EXPECT_NEAR(q.alpha[0] + q.alpha[1], hi, tol * hi) << what << " T=" << T;
    EXPECT_NEAR(q.alpha[0] - q.alpha[1], lo, tol * hi) << what << " T=" << T;
}

TEST(RefQuantizeAct, TwoBitsIsTwoMeansOnAbs) {
    for (Dist d : kDists)
        for (size_t n : {size_t(65), size_t(300), size_t(1024)}) {
            const auto x = random_vector(n, d, uint32_t(n + 17));
            for (int T : {1, 2, 3})
                expect_two_means_cycle(x, T, 1e-5,
                                       std::string(name(d)) + " n=" + std::to_string(n));
        }
}

// Ties at the threshold go outward (|x| >= m): here mean |x| = 2 exactly.
TEST(RefQuantizeAct, TwoBitTiesGoOutward) {
    const std::vector<float> x = {1, 3, 2, -2, -1, -3};
    const Quantized g = amq::ref::quantize_act(x.data(), x.size(), 2, 0);
    EXPECT_EQ(g.alpha[0], 2.0);
    EXPECT_EQ(g.alpha[1], 2.0 / 3);  // mean ||x| - 2|
    EXPECT_EQ(g.codes, (std::vector<int8_t>{1, 1, 1, -1, -1, -1, -1, 1, 1, -1, 1, -1}));
}

// The blocked sums: an element's value counts in its own lane, and the tree
// adds the lanes; the scales are those of exact sums where every partial sum is
// exact (small integers), in any order of the elements across lanes.
TEST(RefQuantizeAct, BlockedSumsOfIntegersAreExact) {
    const size_t L = amq::ref::kActSumLanes;
    for (size_t n : {size_t(1), L - 1, L, L + 1, 3 * L + 5, size_t(1000)}) {
        std::vector<float> x(n);
        for (size_t e = 0; e < n; ++e) x[e] = float(int(e * 7 % 11) - 5);
        double sum_abs = 0;
        for (float v : x) sum_abs += std::fabs(double(v));
        const double a0 = sum_abs / double(n);
        for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
            const Quantized q = amq::ref::quantize_act(x.data(), n, k, 0);
            EXPECT_EQ(q.alpha[0], a0) << "n=" << n << " k=" << k;
            if (k == 1) {  // cycles change nothing
                for (int T : {1, 2})
                    EXPECT_EQ(amq::ref::quantize_act(x.data(), n, 1, T).alpha[0], a0);
                continue;
            }
            if (k == 2) {
                // a_1 = mean ||x| - a_0| from exact sums: only the last roundings.
                double dev = 0;
                for (float v : x) dev += std::fabs(std::fabs(double(v)) - a0);
                EXPECT_NEAR(q.alpha[1], dev / double(n), 1e-14 * a0) << "n=" << n;
                for (int T : {1, 2})
                    if (n > 1) expect_two_means_cycle(x, T, 1e-14, "n=" + std::to_string(n));
                continue;
            }
            // k >= 3: the next scales from f32 residuals (alpha_0 is rounded to a
            // float there), so within a float's rounding of greedy's.
            const Quantized g = amq::ref::greedy(x.data(), n, k);
            for (int i = 1; i < k; ++i)
                EXPECT_NEAR(q.alpha[i], g.alpha[i], 1e-6 * g.alpha[0]) << "n=" << n << " k=" << k;
            // Alternating cycles on the same data: the same codes as alternating's.
            for (int T : {1, 2}) {
                const Quantized a = amq::ref::alternating(x.data(), n, k, T);
                const Quantized b = amq::ref::quantize_act(x.data(), n, k, T);
                EXPECT_EQ(a.codes, b.codes) << "n=" << n << " k=" << k << " T=" << T;
                for (int i = 0; i < k; ++i)
                    EXPECT_NEAR(a.alpha[i], b.alpha[i], 1e-12 * (1 + std::fabs(a.alpha[i])))
                        << "n=" << n << " k=" << k << " T=" << T;
            }
        }
    }
}

// Values far apart in magnitude: the f32 lane sums round where the double sums
// of alternating do not, and the result is still alternating's to 1e-6.
TEST(RefQuantizeAct, WideRangeStaysCloseToAlternating) {
    std::mt19937 rng(9);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> x(4097);
    for (size_t e = 0; e < x.size(); ++e) x[e] = normal(rng) * (e % 5 == 0 ? 1e4f : 1e-3f);
    for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
        const double a = amq::ref::alternating(x.data(), x.size(), k, 2).sq_error(x.data());
        const double q = amq::ref::quantize_act(x.data(), x.size(), k, 2).sq_error(x.data());
        EXPECT_NEAR(q, a, 1e-6 * a) << "k=" << k;
    }
}

// B^T (x - B alpha), the gradient of the squared error; 0 at the least squares fit.
std::vector<double> gradient(const std::vector<float> &x, const int8_t *codes, int k,
                             const double *alpha) {
    const size_t n = x.size();
    std::vector<double> g(k, 0.0);
    for (size_t e = 0; e < n; ++e) {
        const double res = x[e] - code_value(codes, n, e, alpha, k);
        for (int i = 0; i < k; ++i) g[i] += codes[i * n + e] * res;
    }
    return g;
}

TEST(RefRefined, HandExample) {
    // Worked out in exact rational arithmetic. Greedy picks plane 2 = (+,-,+,+,-) with
    // error 2614/3125; refined refits after plane 1, so its residual and plane 2 differ.
    const std::vector<float> x = {6, 7, 4, -2, -5};
    const Quantized q = amq::ref::refined(x.data(), 5, 3);
    EXPECT_EQ(q.codes, (std::vector<int8_t>{1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1, 1, 1, 1, 1}));
    EXPECT_NEAR(q.alpha[0], 61.0 / 14, 1e-14);
    EXPECT_NEAR(q.alpha[1], 19.0 / 14, 1e-14);
    EXPECT_NEAR(q.alpha[2], 6.0 / 7, 1e-14);
    EXPECT_NEAR(q.sq_error(x.data()), 4.0 / 7, 1e-13);
    EXPECT_NEAR(amq::ref::greedy(x.data(), 5, 3).sq_error(x.data()), 2614.0 / 3125, 1e-13);
}

TEST(RefRefined, ScalesAreLeastSquaresForTheirPlanes) {
    for (size_t n : {size_t(65), size_t(1024), size_t(4097)})
        for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
            const auto x = random_vector(n, Dist::StudentT, uint32_t(n + k));
            const Quantized q = amq::ref::refined(x.data(), n, k);
            double l1 = 0;
            for (float v : x) l1 += std::fabs(v);
            for (double g : gradient(x, q.codes.data(), k, q.alpha.data()))
                EXPECT_LE(std::fabs(g), 1e-10 * l1) << "n=" << n << " k=" << k;
            if (k == 1) {
                const Quantized g = amq::ref::greedy(x.data(), n, 1);
                EXPECT_EQ(q.codes, g.codes);
                EXPECT_NEAR(q.alpha[0], g.alpha[0], 1e-12 * g.alpha[0]);
            }
        }
}

TEST(RefRefit, HandExamples) {
    {  // orthogonal planes: alpha_i = b_i . x / n
        const std::vector<float> x = {1, 2, 3, 4};
        const std::vector<int8_t> c = {1, 1, -1, -1, 1, -1, 1, -1};
        double alpha[2] = {9, 9};
        ASSERT_TRUE(amq::ref::refit_scales(x.data(), 4, c.data(), 2, alpha));
        EXPECT_DOUBLE_EQ(alpha[0], -1.0);
        EXPECT_DOUBLE_EQ(alpha[1], -0.5);
    }
    {  // G = [[3,1],[1,3]], h = (6,2) -> alpha = (2, 0)
        const std::vector<float> x = {1, 3, 2};
        const std::vector<int8_t> c = {1, 1, 1, 1, 1, -1};
        double alpha[2] = {9, 9};
        ASSERT_TRUE(amq::ref::refit_scales(x.data(), 3, c.data(), 2, alpha));
        EXPECT_NEAR(alpha[0], 2.0, 1e-15);
        EXPECT_NEAR(alpha[1], 0.0, 1e-15);
    }
}

TEST(RefRefit, RandomPlanesGiveLeastSquares) {
    std::mt19937 rng(42);
    int solved = 0;
    for (size_t n : amq::spec::act_lengths)
        for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
            if (n < size_t(1) << k) continue;  // too short to be (likely) non-singular
            const auto x = random_vector(n, Dist::Normal, uint32_t(n * 3 + k));
            const auto c = random_codes(k * n, rng);
            double alpha[amq::ref::kMaxBits] = {};
            if (!amq::ref::refit_scales(x.data(), n, c.data(), k, alpha)) continue;
            ++solved;
            double l1 = 0;
            for (float v : x) l1 += std::fabs(v);
            for (double g : gradient(x, c.data(), k, alpha))
                EXPECT_LE(std::fabs(g), 1e-10 * l1) << "n=" << n << " k=" << k;
            // Any perturbation of the scales makes the error larger.
            for (int i = 0; i < k; ++i) {
                double p[amq::ref::kMaxBits];
                std::copy(alpha, alpha + k, p);
                p[i] += 1e-3;
                Quantized a{k, n, std::vector<double>(alpha, alpha + k), c};
                Quantized b{k, n, std::vector<double>(p, p + k), c};
                EXPECT_LT(a.sq_error(x.data()), b.sq_error(x.data()));
            }
        }
    EXPECT_GE(solved, 20);  // the non-singular cases were really exercised
}

// Planes 0..2 random but never all equal in an element; plane 3 = -(b0 + b1 + b2),
// so the four planes are linearly dependent though no two are equal.
std::vector<int8_t> dependent_planes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int8_t> c(4 * n);
    for (size_t e = 0; e < n; ++e) {
        int s;
        do s = int(rng() % 8);
        while (s == 0 || s == 7);
        int sum = 0;
        for (int i = 0; i < 3; ++i) sum += c[i * n + e] = (s >> i & 1) ? 1 : -1;
        c[3 * n + e] = int8_t(-sum);
    }
    return c;
}

TEST(RefRefit, SingularLeavesAlphaUntouched) {
    const size_t n = 100;
    const auto x = random_vector(n, Dist::Normal, 8);
    const double init[amq::ref::kMaxBits] = {3.5, -2.25, 0.125, 7.0};
    auto expect_singular = [&](const std::vector<int8_t> &c, int k, const char *what) {
        double alpha[amq::ref::kMaxBits];
        std::copy(init, init + 4, alpha);
        EXPECT_FALSE(amq::ref::refit_scales(x.data(), n, c.data(), k, alpha)) << what;
        for (int i = 0; i < 4; ++i) EXPECT_EQ(alpha[i], init[i]) << what;
    };
    expect_singular(std::vector<int8_t>(2 * n, 1), 2, "k=2, all codes +1");
    expect_singular(std::vector<int8_t>(2 * n, -1), 2, "k=2, all codes -1");
    std::mt19937 rng(9);
    auto c = random_codes(3 * n, rng);
    for (size_t e = 0; e < n; ++e) c[n + e] = int8_t(-c[e]);  // plane 1 = -plane 0
    expect_singular(c, 3, "k=3, plane 1 = -plane 0");
    c = random_codes(4 * n, rng);
    std::copy(c.begin(), c.begin() + n, c.begin() + 3 * n);  // plane 3 = plane 0
    expect_singular(c, 4, "k=4, plane 3 = plane 0");
    expect_singular(dependent_planes(n, 10), 4, "k=4, b3 = -(b0+b1+b2)");
    // The same planes minus the dependent one are fine.
    double alpha[3] = {};
    EXPECT_TRUE(amq::ref::refit_scales(x.data(), n, dependent_planes(n, 10).data(), 3, alpha));
}

TEST(RefRefit, ExactSingularityTestForLargeN) {
    // det(B^T B) has terms up to n^4 ~ 2^70..2^80 here, beyond int64 and beyond
    // double precision: elimination in double leaves a nonzero rounding residue
    // for these singular matrices (n not a power of two), an int64 det overflows.
    for (size_t n : {size_t(196611), size_t(1000003), size_t(1) << 20}) {
        const auto x = random_vector(n, Dist::Normal, 11);
        for (uint32_t seed = 0; seed < 3; ++seed) {
            double alpha[4] = {1, 2, 3, 4};
            EXPECT_FALSE(
                amq::ref::refit_scales(x.data(), n, dependent_planes(n, seed).data(), 4, alpha))
                << "n=" << n << " seed=" << seed;
            EXPECT_EQ(alpha[3], 4.0);
        }
        // Nearly dependent but not: planes 1..3 differ from plane 0 in one element
        // each; det = 64 (n - 3), tiny next to n^4.
        std::mt19937 rng(13);
        auto c = random_codes(4 * n, rng);
        for (int i = 1; i < 4; ++i) {
            std::copy(c.begin(), c.begin() + n, c.begin() + i * n);
            c[i * n + i] = int8_t(-c[i]);
        }
        double alpha[4] = {1, 2, 3, 4};
        EXPECT_TRUE(amq::ref::refit_scales(x.data(), n, c.data(), 4, alpha)) << "n=" << n;
        for (int i = 0; i < 4; ++i) EXPECT_TRUE(std::isfinite(alpha[i]));
    }  // Orthogonal (Walsh) planes, n = 2^16 and 2^17: G = n I, det = n^4 = 2^64 and
    // 2^68, which is 0 modulo 2^64 (an int64 determinant calls it singular).
    for (size_t n : {size_t(1) << 16, size_t(1) << 17}) {
        const auto x = random_vector(n, Dist::Normal, 14);
        std::vector<int8_t> c(4 * n);
        for (int i = 0; i < 4; ++i)
            for (size_t e = 0; e < n; ++e) c[i * n + e] = (e >> i & 1) ? -1 : 1;
        double alpha[4] = {};
        ASSERT_TRUE(amq::ref::refit_scales(x.data(), n, c.data(), 4, alpha)) << "n=" << n;
        for (int i = 0; i < 4; ++i) {
            double h = 0;
            for (size_t e = 0; e < n; ++e) h += c[i * n + e] * double(x[e]);
            EXPECT_NEAR(alpha[i], h / double(n), 1e-15) << "n=" << n << " i=" << i;
        }
    }
}

TEST(RefPack, RoundTripAndZeroPadding) {
    std::mt19937 rng(21);
    const int planes = 3;
    const size_t rows = 2;
    for (size_t n : amq::spec::test_cols) {
        const auto c = random_codes(planes * rows * n, rng);
        const auto w = amq::ref::pack_planes(c.data(), planes, rows, n);
        const size_t words = amq::ref::words_for(n);
        ASSERT_EQ(w.size(), planes * rows * words);
        std::vector<int8_t> back(n);
        for (size_t pr = 0; pr < planes * rows; ++pr) {
            amq::ref::unpack_row(w.data() + pr * words, n, back.data());
            EXPECT_TRUE(std::equal(back.begin(), back.end(), c.begin() + pr * n)) << "n=" << n;
            if (n % 64) {
                EXPECT_EQ(w[pr * words + words - 1] >> (n % 64), 0u) << "n=" << n;
            }
        }
    }
}

TEST(RefPack, BitLayout) {
    const size_t n = 130;
    for (size_t e : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(129)}) {
        std::vector<int8_t> c(n, -1);
        c[e] = 1;
        const auto w = amq::ref::pack_planes(c.data(), 1, 1, n);
        ASSERT_EQ(w.size(), 3u);
        for (size_t i = 0; i < 3; ++i)
            EXPECT_EQ(w[i], i == e / 64 ? uint64_t(1) << (e % 64) : 0u) << "e=" << e;
    }
    const std::vector<int8_t> bad = {1, 0, -1};
    EXPECT_THROW(amq::ref::pack_planes(bad.data(), 1, 1, 3), std::invalid_argument);
}

// Dequantized vector sum_i alpha_i b_i of a [k][n] code array.
std::vector<double> dequantize(const std::vector<int8_t> &c, const double *alpha, int k, size_t n) {
    std::vector<double> v(n);
    for (size_t e = 0; e < n; ++e) v[e] = code_value(c.data(), n, e, alpha, k);
    return v;
}

TEST(RefBinaryDot, EqualsDequantizedDot) {
    std::mt19937 rng(31);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (auto bits : amq::spec::all_bits())
        for (size_t n : amq::spec::test_cols) {
            const auto b = random_codes(bits.w * n, rng), c = random_codes(bits.a * n, rng);
            double alpha[4], beta[4];
            for (auto &v : alpha) v = normal(rng);
            for (auto &v : beta) v = std::fabs(normal(rng));
            const auto wv = dequantize(b, alpha, bits.w, n), av = dequantize(c, beta, bits.a, n);
            double want = 0, scale = 0;
            for (size_t e = 0; e < n; ++e) want += wv[e] * av[e], scale += std::fabs(wv[e] * av[e]);
            const auto pb = amq::ref::pack_planes(b.data(), bits.w, 1, n);
            const auto pc = amq::ref::pack_planes(c.data(), bits.a, 1, n);
            const double got = amq::ref::binary_dot(pb.data(), amq::ref::words_for(n), alpha,
                                                    bits.w, pc.data(), beta, bits.a, n);
            EXPECT_NEAR(got, want, 1e-9 * scale) << "w" << bits.w << "a" << bits.a << " n=" << n;
        }
}

TEST(RefBinaryGemv, EqualsDequantizedGemv) {
    std::mt19937 rng(41);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto bits : amq::spec::all_bits())
        for (size_t rows : {size_t(1), size_t(7), size_t(16)})
            for (size_t n : {size_t(1), size_t(65), size_t(1000)})
                for (bool with_bias : {false, true}) {
                    const int kw = bits.w, ka = bits.a;
                    const auto W = random_codes(kw * rows * n, rng), A = random_codes(ka * n, rng);
                    std::vector<float> alpha(rows * kw), beta(ka), bias(rows);
                    for (auto &v : alpha) v = normal(rng);
                    for (auto &v : beta) v = std::fabs(normal(rng));
                    for (auto &v : bias) v = normal(rng);
                    const auto pw = amq::ref::pack_planes(W.data(), kw, rows, n);
                    const auto pa = amq::ref::pack_planes(A.data(), ka, 1, n);
                    const auto y = amq::ref::binary_gemv(pw.data(), alpha.data(), kw, rows,
                                                         pa.data(), beta.data(), ka, n,
                                                         with_bias ? bias.data() : nullptr);
                    ASSERT_EQ(y.size(), rows);
                    for (size_t r = 0; r < rows; ++r) {
                        double want = with_bias ? bias[r] : 0.0, scale = std::fabs(want);
                        for (size_t e = 0; e < n; ++e) {
                            double w = 0, a = 0;
                            for (int i = 0; i < kw; ++i)
                                w += alpha[r * kw + i] * W[(i * rows + r) * n + e];
                            for (int j = 0; j < ka; ++j) a += beta[j] * A[j * n + e];
                            want += w * a;
                            scale += std::fabs(w * a);
                        }
                        EXPECT_NEAR(y[r], want, 1e-9 * scale)
                            << "w" << kw << "a" << ka << " rows=" << rows << " n=" << n
                            << " r=" << r;
                    }
                }
}

TEST(RefEdgeCases, ZeroVector) {
    for (size_t n : amq::spec::act_lengths)
        for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
            const std::vector<float> x(n, 0.f);
            for (int T : {0, 1, 2})
                for (bool act : {false, true}) {
                    const Quantized q = act      ? amq::ref::quantize_act(x.data(), n, k, T)
                                        : T == 0 ? amq::ref::greedy(x.data(), n, k)
                                                 : amq::ref::alternating(x.data(), n, k, T);
                    EXPECT_EQ(q.alpha, std::vector<double>(k, 0.0)) << "n=" << n << " k=" << k;
                    // Greedy: sign(0) = +1. Alternating: with all values 0 the assignment
                    // takes the first combination in order, s = 2^k - 1: all +1 too.
                    const int8_t want = 1;
                    EXPECT_EQ(q.codes, std::vector<int8_t>(k * n, want))
                        << "n=" << n << " k=" << k;
                    EXPECT_EQ(q.sq_error(x.data()), 0.0);
                }
            const Quantized r = amq::ref::refined(x.data(), n, k);
            EXPECT_EQ(r.alpha, std::vector<double>(k, 0.0));
            EXPECT_EQ(r.codes, std::vector<int8_t>(k * n, 1));
        }
}

TEST(RefEdgeCases, ConstantVectorIsExact) {
    for (float c : {0.75f, -3.1f, 1e-3f})
        for (size_t n : amq::spec::act_lengths)
            for (int k = 1; k <= amq::ref::kMaxBits; ++k) {
                const std::vector<float> x(n, c);
                EXPECT_EQ(amq::ref::greedy(x.data(), n, k).sq_error(x.data()), 0.0)
                    << n << " " << k;
                EXPECT_EQ(amq::ref::refined(x.data(), n, k).sq_error(x.data()), 0.0)
                    << n << " " << k;
                EXPECT_EQ(amq::ref::alternating(x.data(), n, k, 2).sq_error(x.data()), 0.0)
                    << n << " " << k;
                // Exact but for the rounding of the f32 sums of c (up to n / 16
                // terms a lane: a relative error of the scales up to ~1e-5).
                const std::vector<float> &v = x;
                EXPECT_LE(amq::ref::quantize_act(x.data(), n, k, 2).sq_error(x.data()),
                          1e-8 * sq_norm(v))
                    << n << " " << k;
                if (k == 1) {
                    const Quantized q = amq::ref::greedy(x.data(), n, 1);
                    EXPECT_EQ(q.alpha[0], std::fabs(c));
                }
            }
}

void expect_invalid(const std::function<void()> &f, const std::string &needle) {
    try {
        f();
        ADD_FAILURE() << "no exception, expected one mentioning '" << needle << "'";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(RefEdgeCases, InvalidArgumentsThrow) {
    const std::vector<float> x(8, 1.f);
    std::vector<int8_t> c(5 * 8, 1);
    double a[5] = {};
    const uint64_t w[8] = {};
    using namespace amq::ref;
    expect_invalid([&] { greedy(x.data(), 0, 2); }, "n = 0");
    expect_invalid([&] { greedy(x.data(), 8, 5); }, "k = 5");
    expect_invalid([&] { greedy(x.data(), 8, 0); }, "1..4");
    expect_invalid([&] { alternating(x.data(), 0, 2, 2); }, "n = 0");
    expect_invalid([&] { alternating(x.data(), 8, 5, 2); }, "k = 5");
    expect_invalid([&] { alternating(x.data(), 8, 2, -1); }, "T = -1");
    expect_invalid([&] { quantize_act(x.data(), 0, 2, 2); }, "n = 0");
    expect_invalid([&] { quantize_act(x.data(), 8, 0, 2); }, "k = 0");
    expect_invalid([&] { quantize_act(x.data(), 8, 2, -1); }, "T = -1");
    expect_invalid([&] { refined(x.data(), 8, 5); }, "k = 5");
    expect_invalid([&] { refined(x.data(), 0, 1); }, "n = 0");
    expect_invalid([&] { assign_codes(x.data(), 8, a, 5, c.data()); }, "k = 5");
    expect_invalid([&] { assign_codes(x.data(), 0, a, 2, c.data()); }, "n = 0");
    expect_invalid([&] { refit_scales(x.data(), 8, c.data(), 0, a); }, "k = 0");
    expect_invalid([&] { refit_scales(x.data(), 0, c.data(), 2, a); }, "n = 0");
    // Beyond the exact 128-bit range (checked before any element is read).
    expect_invalid([&] { refit_scales(x.data(), size_t(1) << 32, c.data(), 2, a); }, "2^32");
    expect_invalid([&] { binary_dot(w, 1, a, 5, w, a, 1, 8); }, "k_w = 5");
    expect_invalid([&] { binary_dot(w, 1, a, 1, w, a, 0, 8); }, "k_a = 0");
    expect_invalid([&] { binary_dot(w, 1, a, 1, w, a, 1, 0); }, "n = 0");
    const float f[4] = {};
    expect_invalid([&] { binary_gemv(w, f, 1, 1, w, f, 5, 8, nullptr); }, "k_a = 5");
    expect_invalid([&] { pack_planes(c.data(), -1, 1, 8); }, "planes");
}

}  // namespace

// The timing harness keeps each candidate's samples in round order, so that two
// candidates' times can be divided round by round (the floors of amq bench).
TEST(Timing, MedianRatioIsTheMedianOfTheRoundsRatios) {
    using amq::timing::median_ratio;
    EXPECT_DOUBLE_EQ(median_ratio({2, 4, 9}, {1, 2, 3}), 2.0);  // ratios 2, 2, 3
    // Not the ratio of the medians (4 / 1): the rounds' ratios are 1, 1, 4.
    EXPECT_DOUBLE_EQ(median_ratio({1, 10, 4}, {1, 10, 1}), 1.0);
    // Even count: the nearest-rank median of 1, 2, 3, 6 (as timing::median).
    EXPECT_DOUBLE_EQ(median_ratio({1, 4, 9, 12}, {1, 2, 3, 2}),
                     amq::timing::median({1.0, 2.0, 3.0, 6.0}));
    EXPECT_EQ(median_ratio({}, {}), 0.0);
    EXPECT_EQ(median_ratio({1, 2}, {1}), 0.0);      // rounds differ
    EXPECT_EQ(median_ratio({1, 2}, {1, 0}), 0.0);   // no time in a round
    EXPECT_EQ(median_ratio({1, 2}, {1, -1}), 0.0);
}

TEST(Timing, ResultsKeepEverySampleInRoundOrder) {
    // Candidate 1's calls take 20x longer from round 3 on: candidate 0's `after`
    // counts its calibration and then each round, so candidate 1 sees 1 + r or
    // 2 + r in round r (fast in rounds 0-1, either in round 2, slow from round
    // 3). Its samples must show the step where it happened, and the medians be
    // those of the samples.
    int rounds_seen = 0;
    volatile double sink = 0;
    auto spin = [&](int n) {
        for (int i = 0; i < n; ++i) sink = sink + std::sqrt(double(i));
    };
    std::vector<amq::timing::Candidate> cands(2);
    cands[0].run = [&] { spin(2000); };
    cands[0].after = [&] { ++rounds_seen; };
    cands[1].run = [&] { spin(rounds_seen >= 4 ? 40000 : 2000); };
    amq::timing::Options o;
    o.round_ms = 2.0;
    o.min_rounds = o.max_rounds = 7;
    o.stable = 0;
    o.warm_each_round = false;
    const auto t = amq::timing::time_interleaved(cands, o);
    ASSERT_EQ(t.size(), 2u);
    for (const auto &r : t) {
        ASSERT_EQ(r.samples.size(), 7u);
        EXPECT_EQ(r.rounds, 7);
        EXPECT_DOUBLE_EQ(r.median_us, amq::timing::median(r.samples));
    }
    const auto &s = t[1].samples;
    EXPECT_GT(std::min({s[3], s[4], s[5], s[6]}), 5 * std::max(s[0], s[1]));
}

