// The language-model kernels against their scalar references: ternary
// activations (quantize_act_ternary vs ref::ternary), log_softmax (vs
// ref::log_softmax), argmax and top_k (vs a full sort), over the spec's lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/rnn.h"
#include "amq/spec.h"
#include "kernel_testing.h"

using namespace amq;
using amq::testing::normal;

namespace {

// Codes and scales as ref::ternary. The kernel sums in another order than the
// reference, so an element within rounding of the threshold may be coded
// either way: such elements are allowed to differ, no other.
void check_ternary(const std::vector<float> &x, const std::string &what) {
    const size_t n = x.size();
    BinaryVector out;
    quantize_act_ternary(x.data(), n, out);
    ASSERT_EQ(out.k, 2);
    const ref::Quantized q = ref::ternary(x.data(), n);
    double sum = 0;
    for (float v : x) sum += std::fabs(double(v));
    const double t = 0.7 * sum / double(n);
    size_t near = 0;
    for (float v : x) near += std::fabs(std::fabs(double(v)) - t) <= 1e-12 * (t + 1e-300);
    for (int j = 0; j < 2; ++j) {
        if (near == 0)
            EXPECT_EQ(out.beta[j], float(q.alpha[j])) << what << " n=" << n;
        else
            EXPECT_NEAR(out.beta[j], q.alpha[j], 1e-6 * std::fabs(q.alpha[j])) << what;
    }
    std::vector<int8_t> codes(n);
    size_t bad = 0;
    for (int j = 0; j < 2; ++j) {
        ref::unpack_row(out.planes.data() + j * out.words(), n, codes.data());
        for (size_t e = 0; e < n; ++e)
            if (codes[e] != q.codes[j * n + e] &&
                std::fabs(std::fabs(double(x[e])) - t) > 1e-12 * t)
                ++bad;
        if (n % 64)
            EXPECT_EQ(out.planes[j * out.words() + out.words() - 1] >> (n % 64), 0u)
                << what << ": padding bits of plane " << j;
    }
    EXPECT_EQ(bad, 0u) << what << " n=" << n;
}

}  // namespace

TEST(QuantizeActTernary, MatchesReference) {
    for (size_t n : spec::act_lengths) {
        check_ternary(normal(n, uint32_t(n * 3 + 1)), "normal");
        check_ternary(amq::testing::heavy_tailed(n, uint32_t(n + 9)), "heavy");
    }
    for (size_t n : {3, 15, 16, 17, 31, 33, 127, 129, 2049})
        check_ternary(normal(n, uint32_t(n * 5 + 2)), "blocks");
}

// The three levels are used, and the dequantized vector is the reference's.
TEST(QuantizeActTernary, ValuesAndEdgeCases) {
    // Integers: 0.7 mean|x| = 0.7 * 1.5 = 1.05 exactly between levels 1 and 2.
    std::vector<float> x = {0, 1, -1, 2, -2, 3, -3, 0, 1, 2, 3, -3, 0, -1, 2, 0};
    check_ternary(x, "integers");
    BinaryVector out;
    quantize_act_ternary(x.data(), x.size(), out);
    std::vector<int8_t> c0(x.size()), c1(x.size());
    ref::unpack_row(out.planes.data(), x.size(), c0.data());
    ref::unpack_row(out.planes.data() + out.words(), x.size(), c1.data());
    for (size_t e = 0; e < x.size(); ++e) {
        const float v = out.beta[0] * c0[e] + out.beta[1] * c1[e];
        const float want = std::fabs(x[e]) > 1.0f ? (x[e] > 0 ? 2.5f : -2.5f) : 0.0f;
        EXPECT_EQ(v, want) << "element " << e << " = " << x[e];
    }
    // Zero vector: beta 0, codes (+1, -1).
    for (size_t n : {1, 64, 300}) {
        std::vector<float> z(n, 0.0f);
        quantize_act_ternary(z.data(), n, out);
        EXPECT_EQ(out.beta[0], 0.0f);
        EXPECT_EQ(out.beta[1], 0.0f);
        check_ternary(z, "zero");
    }
    // Constant: every element above the threshold.
    std::vector<float> c(100, -0.25f);
    check_ternary(c, "constant");
    quantize_act_ternary(c.data(), c.size(), out);
    EXPECT_EQ(out.beta[0], 0.125f);
    EXPECT_EQ(out.planes[0], 0u);
    check_ternary(normal(300, 4, 1e37f), "huge");
    check_ternary(normal(300, 5, 1e-39f), "denormal");
}

TEST(QuantizeActTernary, BatchItemsAndErrors) {
    const size_t n = 129;
    BinaryBatch batch;
    batch.resize(2, n, 3);
    std::vector<std::vector<float>> xs = {normal(n, 1), normal(n, 2), normal(n, 3)};
    for (size_t b = 0; b < 3; ++b) quantize_act_ternary(xs[b].data(), n, batch, b);
    for (size_t b = 0; b < 3; ++b) {
        BinaryVector v;
        quantize_act_ternary(xs[b].data(), n, v);
        const size_t w = 2 * v.words();
        EXPECT_TRUE(std::equal(v.planes.begin(), v.planes.begin() + w,
                               batch.planes.begin() + b * w));
        EXPECT_EQ(batch.beta[2 * b], v.beta[0]);
    }
    BinaryBatch three;
    three.resize(3, n, 1);
    EXPECT_THROW(quantize_act_ternary(xs[0].data(), n, three, 0), Error);
    EXPECT_THROW(quantize_act(xs[0].data(), n, 3, 0, three, 0, true), Error);
    auto bad = normal(n, 7);
    bad[100] = std::numeric_limits<float>::infinity();
    BinaryVector v;
    EXPECT_THROW(quantize_act_ternary(bad.data(), n, v), Error);
    bad[100] = std::nanf("");
    EXPECT_THROW(quantize_act_ternary(bad.data(), n, v), Error);
    EXPECT_THROW(quantize_act_ternary(bad.data(), 0, v), Error);
}

// ---- log_softmax, argmax, top_k ----------------------------------------------

namespace {

void check_log_softmax(const std::vector<float> &x, const std::string &what) {
    const size_t n = x.size();
    std::vector<float> got(n, std::nanf("")), want(n);
    const double lse = ref::log_softmax(x.data(), n, want.data());
    const float l = log_softmax(x.data(), n, got.data());
    const double tol = 2e-6 * std::max(1.0, std::fabs(lse));
    EXPECT_NEAR(l, lse, tol) << what << " n=" << n;
    // y = x - lse with lse a float: its rounding (|lse| 2^-24) comes on top.
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i)
        bad += !(std::fabs(double(got[i]) - double(want[i])) <=
                 4e-6 * std::max(1.0, std::fabs(double(want[i]))) + 1.2e-7 * std::fabs(lse));
    EXPECT_EQ(bad, 0u) << what << " n=" << n;
    EXPECT_EQ(log_softmax(x.data(), n, nullptr), l) << what;
}

// Indices of the k largest by a full sort (ties: the lower index first).
std::vector<size_t> sorted_top(const std::vector<float> &x, size_t k) {
    std::vector<size_t> idx(x.size());
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] > x[b]; });
    idx.resize(k);
    return idx;
}

}  // namespace

TEST(LogSoftmax, MatchesReference) {
    for (size_t n : spec::vocab_lengths) {
        check_log_softmax(normal(n, uint32_t(n + 1), 3.0f), "normal");
        check_log_softmax(normal(n, uint32_t(n + 2), 40.0f), "wide");
        check_log_softmax(amq::testing::heavy_tailed(n, uint32_t(n + 3)), "heavy");
    }
}

TEST(LogSoftmax, ExtremeValuesAndErrors) {
    // Large offsets: the max shift keeps exp finite.
    auto x = normal(1000, 8, 1.0f);
    for (float &v : x) v += 3e4f;
    check_log_softmax(x, "offset");
    std::vector<float> same(777, -5.0f);
    check_log_softmax(same, "constant");
    std::vector<float> lse_one(1, 123.0f), out(1);
    EXPECT_EQ(log_softmax(lse_one.data(), 1, out.data()), 123.0f);
    EXPECT_EQ(out[0], 0.0f);
    auto y = normal(100, 9);
    y[5] = -1e30f;  // exp underflows to 0: fine
    check_log_softmax(y, "tiny");
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
        auto z = normal(100, 10);
        z[42] = bad;
        try {
            log_softmax(z.data(), z.size(), nullptr);
            ADD_FAILURE() << "no error for " << bad;
        } catch (const Error &e) {
            EXPECT_NE(std::string(e.what()).find("x[42]"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(log_softmax(y.data(), 0, nullptr), Error);
    EXPECT_THROW(log_softmax(nullptr, 5, nullptr), Error);
}

TEST(TopK, MatchesAFullSort) {
    for (size_t n : spec::vocab_lengths)
        for (size_t k : {size_t(1), size_t(2), size_t(5), size_t(40), n}) {
            if (k > n) continue;
            auto x = normal(n, uint32_t(n * 7 + k), 2.0f);
            EXPECT_EQ(top_k(x.data(), n, k), sorted_top(x, k)) << "n=" << n << " k=" << k;
            // Coarse values: many ties, across blocks.
            for (float &v : x) v = std::round(v);
            EXPECT_EQ(top_k(x.data(), n, k), sorted_top(x, k)) << "ties n=" << n << " k=" << k;
        }
    std::vector<float> all_same(300, 1.5f);
    EXPECT_EQ(top_k(all_same.data(), 300, 3), (std::vector<size_t>{0, 1, 2}));
    auto x = normal(6022, 77);
    x[6021] = 100.0f;  // the last, partial block
    EXPECT_EQ(argmax(x.data(), x.size()), 6021u);
    x[64] = 100.0f;  // equal to it: the lower index
    EXPECT_EQ(argmax(x.data(), x.size()), 64u);
    EXPECT_THROW(top_k(x.data(), x.size(), 0), Error);
    EXPECT_THROW(top_k(x.data(), 10, 11), Error);
    EXPECT_THROW(argmax(x.data(), 0), Error);
}
