// The offline weight quantizers (amq/quantizers.h) against brute force and
// closed forms, their ordering on trained-like matrices, and the exactness of the
// plane representations of uniform, balanced and ternary levels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "amq/quantizers.h"

namespace amq {
namespace {

enum class Dist { gaussian, laplacian };

std::vector<float> random_matrix(size_t rows, size_t cols, Dist dist, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    std::exponential_distribution<float> expo(20.0f);
    std::bernoulli_distribution coin;
    std::vector<float> w(rows * cols);
    for (float &v : w) v = dist == Dist::gaussian ? normal(rng) : (coin(rng) ? 1 : -1) * expo(rng);
    return w;
}

double row_error(const ref::Quantized &q, const float *w) { return q.sq_error(w); }

ref::Quantized row(Method m, const float *w, size_t n, int k, int T = 2,
                   Init init = Init::refined) {
    return quantize_row(QuantizeOptions{m, k, T, 1, init}, w, n);
}

// The best k-plane approximation of a short row: every code matrix, least-squares
// scales for each.
double brute_force_optimum(const float *w, size_t n, int k) {
    double best = INFINITY;
    const size_t combos = size_t(1) << (size_t(k) * n);
    std::vector<int8_t> codes(size_t(k) * n);
    for (size_t bits = 0; bits < combos; ++bits) {
        for (size_t b = 0; b < size_t(k) * n; ++b) codes[b] = (bits >> b & 1) ? 1 : -1;
        ref::Quantized q{k, n, std::vector<double>(size_t(k), 0.0), codes};
        if (!ref::refit_scales(w, n, codes.data(), k, q.alpha.data())) continue;
        best = std::min(best, q.sq_error(w));
    }
    return best;
}

TEST(Quantizers, OneBitMethodsReachTheOptimum) {
    // With one plane, sign(w) and mean|w| are optimal; greedy, refined and
    // alternating must all find it.
    const std::vector<float> w = {0.3f, -1.2f, 0.05f, 2.0f, -0.4f, 0.0f, 0.9f, -0.1f};
    const double best = brute_force_optimum(w.data(), w.size(), 1);
    for (Method m : {Method::greedy, Method::refined, Method::alternating}) {
        const ref::Quantized q = row(m, w.data(), w.size(), 1);
        EXPECT_NEAR(row_error(q, w.data()), best, 1e-9) << method_name(m);
    }
}

TEST(Quantizers, AlternatingAgainstBruteForce) {
    // Two and three planes over 6 elements. Alternating's codes are the nearest of
    // the 2^k values of its final scales (brute force per element), its error is
    // never below the optimum over all code matrices, and never above the start
    // it came from (greedy or refined).
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (int k = 2; k <= 3; ++k)
        for (int trial = 0; trial < 10; ++trial) {
            std::vector<float> w(6);
            for (float &v : w) v = normal(rng);
            const double best = brute_force_optimum(w.data(), w.size(), k);
            for (Init init : {Init::greedy, Init::refined}) {
                const ref::Quantized q = row(Method::alternating, w.data(), 6, k, 3, init);
                const double start = row_error(
                    row(init == Init::greedy ? Method::greedy : Method::refined, w.data(), 6, k),
                    w.data());
                EXPECT_GE(row_error(q, w.data()), best - 1e-9);
                EXPECT_LE(row_error(q, w.data()), start * (1 + 1e-12));
                // After a refit the codes may no longer be the nearest; check the
                // assignment step itself on the final scales.
                std::vector<int8_t> codes(q.codes.size());
                ref::assign_codes(w.data(), 6, q.alpha.data(), k, codes.data());
                for (size_t e = 0; e < 6; ++e) {
                    double nearest = INFINITY, got = 0;
                    for (int s = 0; s < (1 << k); ++s) {
                        double v = 0;
                        for (int i = 0; i < k; ++i) v += q.alpha[i] * ((s >> i & 1) ? 1 : -1);
                        nearest = std::min(nearest, std::fabs(w[e] - v));
                    }
                    for (int i = 0; i < k; ++i) got += q.alpha[i] * codes[size_t(i) * 6 + e];
                    EXPECT_NEAR(std::fabs(w[e] - got), nearest, 1e-12);
                }
            }
        }
}

TEST(Quantizers, RefinedTwoBitsClosedForm) {
    const std::vector<float> w = {0.7f, -0.2f, 0.1f, -1.5f, 0.9f, 0.3f, -0.6f};
    const size_t n = w.size();
    // b1 = sign(w), b2 = sign(w - mean|w| b1), then the 2x2 normal equations.
    double m = 0;
    for (float v : w) m += std::fabs(v);
    m /= double(n);
    std::vector<double> b1(n), b2(n);
    for (size_t e = 0; e < n; ++e) {
        b1[e] = w[e] >= 0 ? 1 : -1;
        b2[e] = (w[e] - m * b1[e]) >= 0 ? 1 : -1;
    }
    double g11 = 0, g12 = 0, g22 = 0, h1 = 0, h2 = 0;
    for (size_t e = 0; e < n; ++e) {
        g11 += b1[e] * b1[e];
        g12 += b1[e] * b2[e];
        g22 += b2[e] * b2[e];
        h1 += b1[e] * w[e];
        h2 += b2[e] * w[e];
    }
    const double det = g11 * g22 - g12 * g12;
    const double a1 = (g22 * h1 - g12 * h2) / det, a2 = (g11 * h2 - g12 * h1) / det;
    const ref::Quantized q = row(Method::refined, w.data(), n, 2);
    EXPECT_NEAR(q.alpha[0], a1, 1e-12);
    EXPECT_NEAR(q.alpha[1], a2, 1e-12);
    for (size_t e = 0; e < n; ++e) {
        EXPECT_EQ(q.codes[e], b1[e]);
        EXPECT_EQ(q.codes[n + e], b2[e]);
    }
}

// The level index s of element e: bit i of s set <=> code_i = +1.
unsigned level_of(const ref::Quantized &q, size_t e) {
    unsigned s = 0;
    for (int i = 0; i < q.k; ++i) s |= unsigned(q.codes[size_t(i) * q.n + e] > 0) << i;
    return s;
}

TEST(Quantizers, UniformTakesTheNearestEvenlySpacedLevel) {
    const std::vector<float> w = random_matrix(1, 301, Dist::laplacian, 3);
    for (int k = 1; k <= 4; ++k) {
        const ref::Quantized q = row(Method::uniform, w.data(), w.size(), k);
        double m = 0;
        for (float v : w) m = std::max(m, double(std::fabs(v)));
        const unsigned K = (1u << k) - 1;
        for (size_t e = 0; e < w.size(); ++e) {
            // Brute force over the 2^k levels m (2s - K) / K.
            double best = INFINITY;
            for (unsigned s = 0; s <= K; ++s)
                best = std::min(best, std::fabs(w[e] - m * (2.0 * s - K) / K));
            EXPECT_NEAR(std::fabs(w[e] - q.value(e)), best, 1e-6 * m) << "k " << k << " e " << e;
        }
    }
}

TEST(Quantizers, BalancedBinsHoldEqualCounts) {
    // 320 distinct values, a multiple of every 2^k: each bin holds exactly n / 2^k,
    // and the bins are in the order of the values.
    const std::vector<float> w = random_matrix(1, 320, Dist::gaussian, 5);
    for (int k = 1; k <= 4; ++k) {
        const ref::Quantized q = row(Method::balanced, w.data(), w.size(), k);
        std::vector<size_t> count(size_t(1) << k, 0);
        for (size_t e = 0; e < w.size(); ++e) ++count[level_of(q, e)];
        for (size_t c : count) EXPECT_EQ(c, w.size() >> k) << "k " << k;
        for (size_t a = 0; a < w.size(); ++a)
            for (size_t b = 0; b < w.size(); ++b)
                if (w[a] < w[b]) ASSERT_LE(level_of(q, a), level_of(q, b));
    }
}

TEST(Quantizers, TernaryClosedForm) {
    const std::vector<float> w = {0.05f, -0.9f, 0.4f, 0.0f, -0.2f, 1.1f, -0.35f, 0.3f};
    double mean = 0;
    for (float v : w) mean += std::fabs(v);
    const double thr = 0.7 * mean / double(w.size());
    double sum = 0;
    int count = 0;
    for (float v : w)
        if (std::fabs(v) > thr) sum += std::fabs(v), ++count;
    const double a = double(float(sum / count));
    const ref::Quantized q = row(Method::ternary, w.data(), w.size(), 2);
    ASSERT_EQ(q.k, 2);
    for (size_t e = 0; e < w.size(); ++e) {
        const double want = std::fabs(w[e]) > thr ? (w[e] > 0 ? a : -a) : 0.0;
        EXPECT_EQ(q.value(e), want) << "e " << e;
    }
}

// Uniform and balanced values are c (2s - K) with scales c 2^i, exactly; ternary
// values are exactly -a, 0, +a with two equal scales a/2. Checked on the float
// scales of quantize_matrix, the ones the kernels use.
TEST(Quantizers, PlaneRepresentationsAreExact) {
    const size_t rows = 9, cols = 130;
    const std::vector<float> w = random_matrix(rows, cols, Dist::laplacian, 11);
    for (Method m : {Method::uniform, Method::balanced, Method::ternary}) {
        for (int k = 1; k <= 4; ++k) {
            if (!method_supports_bits(m, k)) continue;
            const QuantTensor q = quantize_matrix(w.data(), rows, cols, {m, k, 0, 1});
            for (size_t r = 0; r < rows; ++r) {
                const float *alpha = &q.alpha[r * size_t(k)];
                if (m == Method::ternary) {
                    EXPECT_EQ(alpha[0], alpha[1]);
                } else {
                    for (int i = 1; i < k; ++i) EXPECT_EQ(alpha[i], std::ldexp(alpha[0], i));
                    double mx = 0;
                    for (size_t c = 0; c < cols; ++c)
                        mx = std::max(mx, double(std::fabs(w[r * cols + c])));
                    if (m == Method::uniform)
                        EXPECT_EQ(double(alpha[0]), double(float(mx / ((1u << k) - 1))));
                }
                std::set<double> levels;
                for (size_t c = 0; c < cols; ++c) {
                    double v = 0;  // exact in double: at most 4 terms c 2^i
                    for (int i = 0; i < k; ++i) {
                        const uint64_t word = q.planes[(size_t(i) * rows + r) * q.words() + c / 64];
                        v += double(alpha[i]) * ((word >> (c % 64) & 1) ? 1 : -1);
                    }
                    levels.insert(v);
                }
                for (double v : levels) {
                    const double units = v / double(alpha[0]);  // 2s - K, or -2, 0, 2
                    EXPECT_EQ(units, std::round(units)) << method_name(m) << " k " << k;
                    EXPECT_LE(std::fabs(units), double((1u << k) - 1) + (m == Method::ternary));
                }
            }
        }
    }
}

// Balanced's step is the least-squares c of w ~ c (2s - K) for its bins.
TEST(Quantizers, BalancedStepIsLeastSquares) {
    const std::vector<float> w = random_matrix(1, 200, Dist::laplacian, 13);
    for (int k = 1; k <= 4; ++k) {
        const ref::Quantized q = row(Method::balanced, w.data(), w.size(), k);
        const double K = double((1u << k) - 1);
        double wl = 0, ll = 0;
        for (size_t e = 0; e < w.size(); ++e) {
            const double L = 2.0 * level_of(q, e) - K;
            wl += L * w[e];
            ll += L * L;
        }
        EXPECT_EQ(q.alpha[0], double(float(wl / ll))) << "k " << k;
    }
}

// Tensor range: one set of levels for the whole matrix, as the paper's baselines.
TEST(Quantizers, TensorRangeSharesTheLevels) {
    const size_t rows = 16, cols = 40;  // 640 distinct values: a multiple of every 2^k
    const std::vector<float> w = random_matrix(rows, cols, Dist::gaussian, 31);
    double mx = 0;
    for (float v : w) mx = std::max(mx, double(std::fabs(v)));
    for (int k = 1; k <= 4; ++k) {
        QuantizeOptions o{Method::uniform, k, 0, 2};
        o.range = Range::tensor;
        const QuantTensor u = quantize_matrix(w.data(), rows, cols, o);
        for (size_t r = 0; r < rows; ++r)
            EXPECT_EQ(double(u.alpha[r * size_t(k)]), double(float(mx / ((1u << k) - 1))));
        o.method = Method::balanced;
        const QuantTensor b = quantize_matrix(w.data(), rows, cols, o);
        std::vector<size_t> count(size_t(1) << k, 0);
        for (size_t r = 0; r < rows; ++r) {
            EXPECT_EQ(b.alpha[r * size_t(k)], b.alpha[0]);
            for (size_t c = 0; c < cols; ++c) {
                unsigned s = 0;
                for (int i = 0; i < k; ++i)
                    s |= unsigned(b.planes[(size_t(i) * rows + r) * b.words()] >> c & 1) << i;
                ++count[s];
            }
        }
        for (size_t n : count) EXPECT_EQ(n, rows * cols >> k) << "k " << k;
        // Row range differs (each row has its own max).
        EXPECT_NE(quantize_matrix(w.data(), rows, cols, {Method::uniform, k, 0, 2}).alpha, u.alpha);
    }
}

class Ordering : public ::testing::TestWithParam<std::tuple<Dist, int>> {};

// On every row of a trained-like matrix: alternating <= refined <= greedy, and
// alternating from the paper's greedy init <= greedy.
TEST_P(Ordering, AlternatingRefinedGreedyOnEveryRow) {
    const auto [dist, k] = GetParam();
    const size_t rows = 200, cols = 300;
    const std::vector<float> w = random_matrix(rows, cols, dist, 17 + unsigned(k));
    for (size_t r = 0; r < rows; ++r) {
        const float *x = &w[r * cols];
        const double alt = row_error(row(Method::alternating, x, cols, k), x);
        const double paper = row_error(row(Method::alternating, x, cols, k, 2, Init::greedy), x);
        const double refined = row_error(row(Method::refined, x, cols, k), x);
        const double greedy = row_error(row(Method::greedy, x, cols, k), x);
        EXPECT_LE(alt, refined * (1 + 1e-12)) << "row " << r;
        EXPECT_LE(refined, greedy * (1 + 1e-12)) << "row " << r;
        EXPECT_LE(paper, greedy * (1 + 1e-12)) << "row " << r;
    }
}

INSTANTIATE_TEST_SUITE_P(Quantizers, Ordering,
                         ::testing::Combine(::testing::Values(Dist::gaussian, Dist::laplacian),
                                            ::testing::Values(2, 3, 4)));

TEST(Quantizers, EachAlternatingCycleDoesNotIncreaseTheError) {
    const size_t rows = 64, cols = 257;
    const std::vector<float> w = random_matrix(rows, cols, Dist::laplacian, 23);
    for (int k = 1; k <= 4; ++k) {
        double last = INFINITY;
        for (int T = 0; T <= 6; ++T) {
            const QuantTensor q =
                quantize_matrix(w.data(), rows, cols, {Method::alternating, k, T, 2});
            const double err = quantization_error(w.data(), q).err;
            EXPECT_LE(err, last * (1 + 1e-6)) << "k " << k << " T " << T;  // float scales
            last = err;
        }
    }
}

TEST(Quantizers, MatrixIsRowsPackedAndThreadsDoNotChangeIt) {
    const size_t rows = 37, cols = 129;
    const std::vector<float> w = random_matrix(rows, cols, Dist::gaussian, 29);
    for (Method m : all_methods()) {
        const int k = m == Method::ternary ? 2 : 3;
        const QuantTensor one = quantize_matrix(w.data(), rows, cols, {m, k, 2, 1});
        const QuantTensor many = quantize_matrix(w.data(), rows, cols, {m, k, 2, 5});
        EXPECT_EQ(one.planes, many.planes) << method_name(m);
        EXPECT_EQ(one.alpha, many.alpha) << method_name(m);
        for (size_t r = 0; r < rows; ++r) {
            const ref::Quantized q = row(m, &w[r * cols], cols, k);
            for (size_t c = 0; c < cols; ++c)
                ASSERT_NEAR(one.value(r, c), q.value(c), 1e-6) << method_name(m);
        }
        // Padding bits stay 0.
        for (size_t p = 0; p < size_t(k) * rows; ++p)
            EXPECT_EQ(one.planes[p * one.words() + one.words() - 1] & ~ref::last_word_mask(cols),
                      0u);
        const ErrorSums e = quantization_error(w.data(), one);
        EXPECT_GT(e.relative(), 0.0);
        EXPECT_LT(e.relative(), m == Method::uniform || m == Method::balanced ? 2.0 : 0.2);
    }
}

TEST(Quantizers, ZeroRowsAndConstantRows) {
    const size_t cols = 70;
    std::vector<float> w(2 * cols, 0.0f);
    std::fill(w.begin() + cols, w.end(), -0.25f);
    for (Method m : all_methods()) {
        const int k = 2;
        const QuantTensor q = quantize_matrix(w.data(), 2, cols, {m, k, 2, 1});
        for (size_t c = 0; c < cols; ++c) EXPECT_EQ(q.value(0, c), 0.0f) << method_name(m);
        for (size_t c = 0; c < cols; ++c) EXPECT_FLOAT_EQ(q.value(1, c), -0.25f) << method_name(m);
    }
}

TEST(Quantizers, BadInputNamesTheProblem) {
    std::vector<float> w(6 * 10, 0.5f);
    auto message = [&](const QuantizeOptions &o, size_t rows = 6, size_t cols = 10) {
        try {
            quantize_matrix(w.data(), rows, cols, o);
        } catch (const std::invalid_argument &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(message({Method::alternating, 5, 2, 1}).find("bits = 5"), std::string::npos);
    EXPECT_NE(message({Method::greedy, 0, 2, 1}).find("expected 1..4"), std::string::npos);
    EXPECT_NE(message({Method::ternary, 3, 2, 1}).find("ternary, expected 2"), std::string::npos);
    EXPECT_NE(message({Method::alternating, 2, -1, 1}).find("iters = -1"), std::string::npos);
    EXPECT_NE(message({Method::alternating, 2, 2, 1}, 0, 10).find("shape 0x10"), std::string::npos);
    w[3 * 10 + 7] = NAN;
    EXPECT_NE(message({Method::greedy, 2, 2, 1}).find("element (3, 7) is nan"), std::string::npos);
    w[3 * 10 + 7] = -INFINITY;
    EXPECT_NE(message({Method::greedy, 2, 2, 1}).find("element (3, 7) is -inf"), std::string::npos);
    EXPECT_THROW(parse_method("alternate"), std::invalid_argument);
    try {
        parse_method("alternate");
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("uniform|balanced|greedy|refined|alternating|ternary"),
                  std::string::npos);
    }
    for (Method m : all_methods()) EXPECT_EQ(parse_method(method_name(m)), m);
}

}  // namespace
}  // namespace amq
