// The AOT Halide kernels against the scalar references, over the spec.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/spec.h"
#include "kernel_testing.h"

using namespace amq;
using amq::testing::normal;
using amq::testing::random_planes;

namespace {

// Runs bgemv on random weights and activations and compares every row to
// ref::binary_gemv. Returns the number of mismatching rows.
void check_bgemv(int kw, int ka, size_t rows, size_t cols, uint32_t seed, bool with_bias) {
    const size_t words = ref::words_for(cols);
    auto W = random_planes(kw, rows, cols, seed);
    auto alpha = normal(rows * kw, seed + 1);
    auto bias = normal(rows, seed + 2);
    auto A = random_planes(ka, 1, cols, seed + 3);
    auto beta = normal(ka, seed + 4);

    BinaryMatrix M = BinaryMatrix::from_planes(W.data(), alpha.data(), kw, rows, cols,
                                               with_bias ? bias.data() : nullptr);
    BinaryVector a;
    a.resize(ka, cols);
    a.planes.assign(A.begin(), A.end());
    a.beta.assign(beta.begin(), beta.end());
    std::vector<float> y(rows, std::nanf(""));
    bgemv(M, a, y.data());

    auto expect = ref::binary_gemv(W.data(), alpha.data(), kw, rows, A.data(), beta.data(), ka,
                                   cols, with_bias ? bias.data() : nullptr);
    size_t bad = 0;
    for (size_t r = 0; r < rows; ++r) {
        double scale = 0;
        for (int i = 0; i < kw; ++i)
            for (int j = 0; j < ka; ++j)
                scale += std::abs(alpha[r * kw + i] * beta[j]) * double(cols);
        if (!(std::abs(y[r] - expect[r]) <= amq::testing::tol(scale))) {
            if (bad < 3)
                ADD_FAILURE() << "w" << kw << "a" << ka << " " << rows << "x" << cols << " row "
                              << r << ": kernel " << y[r] << " reference " << expect[r];
            ++bad;
        }
    }
    EXPECT_EQ(bad, 0u) << "w" << kw << "a" << ka << " " << rows << "x" << cols;
}

}  // namespace

class BgemvBits : public ::testing::TestWithParam<spec::Bits> {};

TEST_P(BgemvBits, MatchesReferenceOverSpecShapes) {
    const auto b = GetParam();
    uint32_t seed = 100;
    for (size_t rows : spec::test_rows)
        for (size_t cols : spec::test_cols) {
            // The largest pairs only with a few column counts, to keep the suite fast.
            if (rows * cols > 4096 * 1024 && cols != 4097) continue;
            check_bgemv(b.w, b.a, rows, cols, seed++, (seed % 2) == 0);
        }
}

INSTANTIATE_TEST_SUITE_P(AllBitPairs, BgemvBits, ::testing::ValuesIn(spec::all_bits()),
                         [](const auto &info) {
                             return "w" + std::to_string(info.param.w) + "a" +
                                    std::to_string(info.param.a);
                         });

TEST(Bgemv, ExtremeValues) {
    // All-ones and all-zero planes at the largest magnitudes the counts reach.
    for (size_t cols : {64, 65, 4097}) {
        const size_t rows = 9, words = ref::words_for(cols);
        for (uint64_t fill : {0ull, ~0ull}) {
            std::vector<uint64_t> W(2 * rows * words, fill), A(2 * words, ~fill);
            const uint64_t mask = ref::last_word_mask(cols);
            for (size_t p = 0; p < 2 * rows; ++p) W[p * words + words - 1] &= mask;
            for (size_t p = 0; p < 2; ++p) A[p * words + words - 1] &= mask;
            std::vector<float> alpha(rows * 2, 1e3f), beta = {1e3f, -1e3f};
            auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 2, rows, cols);
            BinaryVector a;
            a.resize(2, cols);
            a.planes.assign(A.begin(), A.end());
            a.beta = beta;
            std::vector<float> y(rows);
            bgemv(M, a, y.data());
            auto e = ref::binary_gemv(W.data(), alpha.data(), 2, rows, A.data(), beta.data(), 2,
                                      cols, nullptr);
            for (size_t r = 0; r < rows; ++r) EXPECT_NEAR(y[r], e[r], 1e-3 * 4e6 * cols);
        }
    }
}

TEST(Bgemv, ZeroScalesGiveBias) {
    const size_t rows = 13, cols = 100;
    auto W = random_planes(3, rows, cols, 7);
    std::vector<float> alpha(rows * 3, 0.0f);
    auto bias = normal(rows, 8);
    auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 3, rows, cols, bias.data());
    BinaryVector a;
    std::vector<float> x = normal(cols, 9);
    quantize_act(x.data(), cols, 2, 2, a);
    std::vector<float> y(rows);
    bgemv(M, a, y.data());
    for (size_t r = 0; r < rows; ++r) EXPECT_EQ(y[r], bias[r]);
}

// The runtime calls the products' unchecked kernels: a matrix whose buffers no
// longer hold its shape (moved from) is an error naming it, not a read of null.
TEST(Bgemv, MovedFromMatrixIsAClearError) {
    const size_t rows = 13, cols = 100;
    auto W = random_planes(2, rows, cols, 11);
    std::vector<float> alpha(rows * 2, 0.5f);
    auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 2, rows, cols);
    BinaryMatrix taken = std::move(M);
    BinaryVector a;
    std::vector<float> x = normal(cols, 12), y(rows);
    quantize_act(x.data(), cols, 2, 2, a);
    bgemv(taken, a, y.data());  // the matrix it moved to works
    amq::testing::expect_throw_with<Error>([&] { bgemv(M, a, y.data()); }, "was it moved from?");
    BinaryBatch batch;
    batch.resize(2, cols, 1);
    quantize_act(x.data(), cols, 2, 2, batch, 0);
    amq::testing::expect_throw_with<Error>([&] { bgemm(M, batch, y.data()); },
                                           "was it moved from?");
}

TEST(BinaryMatrix, RoundTripsToModelLayout) {
    for (size_t rows : spec::test_rows) {
        auto W = random_planes(3, rows, 130, uint32_t(rows));
        std::vector<float> alpha(rows * 3, 1.0f);
        auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 3, rows, 130);
        EXPECT_EQ(M.to_planes(), W) << rows;
    }
}

// ---- quantize_act -----------------------------------------------------------

namespace {

template <typename Fn>
void expect_error(Fn &&fn, const std::string &needle) {
    amq::testing::expect_throw_with<Error>(fn, needle);
}

// The kernel's output as a ref::Quantized: its k planes unpacked, its scales.
ref::Quantized unpacked(const BinaryVector &out, int k, size_t n) {
    ref::Quantized q{k, n, std::vector<double>(out.beta.begin(), out.beta.begin() + k),
                     std::vector<int8_t>(size_t(k) * n)};
    for (int j = 0; j < k; ++j)
        ref::unpack_row(out.planes.data() + j * out.words(), n, q.codes.data() + j * n);
    return q;
}

// Compares the kernel to ref::quantize_act: every code the same; the scales equal
// to float(the reference's) for k <= 2 (the same operations in the same order),
// within 1e-5 of the largest for k >= 3 (solved by elimination there, by
// cofactors in the reference).
void check_quantize_act(const std::vector<float> &x, int k, int T, const std::string &what) {
    const size_t n = x.size();
    BinaryVector out;
    quantize_act(x.data(), n, k, T, out);
    ref::Quantized q = ref::quantize_act(x.data(), n, k, T);
    double amax = 0;
    for (double a : q.alpha) amax = std::max(amax, std::abs(a));
    for (int j = 0; j < k; ++j) {
        EXPECT_NEAR(out.beta[j], q.alpha[j], 1e-5 * amax + 1e-30)
            << what << " k=" << k << " T=" << T << " scale " << j;
        if (k <= 2)
            EXPECT_EQ(out.beta[j], float(q.alpha[j]))
                << what << " k=" << k << " T=" << T << " n=" << n << " scale " << j;
    }
    // Values, not codes: equal values may come from different codes only on ties.
    size_t mismatches = 0;
    const ref::Quantized got = unpacked(out, k, n);
    for (int j = 0; j < k; ++j)
        for (size_t e = 0; e < n; ++e)
            if (got.codes[j * n + e] != q.codes[j * n + e]) {
                ++mismatches;
                break;
            }
    // Padding bits must be zero.
    if (n % 64)
        for (int j = 0; j < k; ++j)
            EXPECT_EQ(out.planes[j * out.words() + out.words() - 1] >> (n % 64), 0u) << what;
    EXPECT_EQ(mismatches, 0u) << what << " k=" << k << " T=" << T << " n=" << n;
}

}  // namespace

class QuantizeActBits : public ::testing::TestWithParam<int> {};

TEST_P(QuantizeActBits, MatchesReferenceNormal) {
    const int k = GetParam();
    for (int T = 0; T <= 3; ++T)
        for (size_t n : spec::act_lengths)
            check_quantize_act(normal(n, uint32_t(n * 7 + k + T)), k, T, "normal");
}

TEST_P(QuantizeActBits, MatchesReferenceHeavyTailed) {
    const int k = GetParam();
    for (size_t n : spec::act_lengths)
        check_quantize_act(amq::testing::heavy_tailed(n, uint32_t(n + 3 * k)), k, 2, "heavy");
}

// Mostly zeros and a few large values: greedy's second scale exceeds its first,
// so for k = 2 the first cycle's threshold is not greedy's and it takes a pass
// of its own (otherwise it reuses greedy's).
TEST_P(QuantizeActBits, SparseVectorMatchesReference) {
    const int k = GetParam();
    for (size_t n : spec::act_lengths) {
        std::vector<float> x = normal(n, uint32_t(5 * n + k));
        for (size_t e = 0; e < n; ++e)
            if (e % 13 != 5) x[e] = 0.0f;
        if (k == 2 && n >= 64) {
            const ref::Quantized g = ref::quantize_act(x.data(), n, 2, 0);
            ASSERT_GT(g.alpha[1], g.alpha[0]) << "n=" << n << ": not the case this test is for";
        }
        for (int T = 0; T <= 3; ++T) {
            if (k <= 2) {
                check_quantize_act(x, k, T, "sparse");
                continue;
            }
            // k >= 3: the zeros lie on a midpoint (0 between symmetric values),
            // which the kernel's scales (elimination, within 1e-5 of the
            // reference's) may put a rounding either side of: the tie breaks
            // either way, at the same error.
            BinaryVector out;
            quantize_act(x.data(), n, k, T, out);
            const double want = ref::quantize_act(x.data(), n, k, T).sq_error(x.data());
            EXPECT_NEAR(unpacked(out, k, n).sq_error(x.data()), want, 1e-5 * want + 1e-12)
                << "sparse k=" << k << " T=" << T << " n=" << n;
        }
    }
}

TEST_P(QuantizeActBits, ZeroVectorGivesZeroScalesAndPlusOneCodes) {
    const int k = GetParam();
    for (size_t n : {1, 65, 1024}) {
        std::vector<float> x(n, 0.0f);
        BinaryVector out;
        quantize_act(x.data(), n, k, 2, out);
        for (int j = 0; j < k; ++j) EXPECT_EQ(out.beta[j], 0.0f);
        std::vector<int8_t> codes(n);
        for (int j = 0; j < k; ++j) {
            ref::unpack_row(out.planes.data() + j * out.words(), n, codes.data());
            for (size_t e = 0; e < n; ++e) ASSERT_EQ(codes[e], 1) << "k=" << k << " e=" << e;
        }
    }
}

TEST_P(QuantizeActBits, ConstantVector) {
    const int k = GetParam();
    std::vector<float> x(300, -2.5f);
    check_quantize_act(x, k, 2, "constant");
    BinaryVector out;
    quantize_act(x.data(), x.size(), k, 2, out);
    // Dequantized value equals the constant.
    std::vector<int8_t> codes(x.size());
    double v = 0;
    for (int j = 0; j < k; ++j) {
        ref::unpack_row(out.planes.data() + j * out.words(), x.size(), codes.data());
        v += out.beta[j] * codes[0];
    }
    EXPECT_NEAR(v, -2.5, 1e-5);
}

// Lengths around the blocks of the passes (kSumLanes = 32 elements, the last
// block masked) and the 64-element words of the packing pass.
TEST_P(QuantizeActBits, LengthsAroundBlocksAndWords) {
    const int k = GetParam();
    for (int T = 0; T <= 3; ++T)
        for (size_t n : {3, 7, 8, 15, 16, 17, 31, 33, 100, 127, 128, 129, 1000, 2049})
            check_quantize_act(normal(n, uint32_t(n * 13 + k + 5 * T)), k, T, "blocks");
}

// Values near the ends of the float range: sums far above FLT_MAX, levels and
// midpoints that round to +-inf in f32, and denormal inputs.
TEST_P(QuantizeActBits, HugeAndTinyValues) {
    const int k = GetParam();
    for (size_t n : {5, 64, 300}) {
        check_quantize_act(normal(n, uint32_t(n + k), 1e37f), k, 2, "huge");
        check_quantize_act(normal(n, uint32_t(3 * n + k), 1e-39f), k, 2, "denormal");
        // Scales of the reference may pass FLT_MAX here: then the kernel reports it.
        auto x = normal(n, uint32_t(2 * n + k));
        for (size_t e = 0; e < n; e += 3) x[e] = (e % 2 ? -3.3e38f : 3.3e38f);
        ref::Quantized q = ref::quantize_act(x.data(), n, k, 2);
        bool fits = true;
        for (double a : q.alpha) fits = fits && std::abs(a) <= std::numeric_limits<float>::max();
        if (fits) {
            check_quantize_act(x, k, 2, "near FLT_MAX");
        } else {
            BinaryVector out;
            EXPECT_THROW(quantize_act(x.data(), n, k, 2, out), Error) << "k=" << k << " n=" << n;
        }
    }
}

// Small integers put elements exactly on midpoints (ties take the lower value)
// and exactly on 0 (sign +1). With k >= 3 such vectors also make G singular or
// nearly so, where the elimination and the reference's exact determinant may
// decide differently (quantize/reference.h), so only k <= 2 is compared here.
TEST(QuantizeAct, ExactTiesOnMidpoints) {
    for (int k = 1; k <= 2; ++k)
        for (int T = 0; T <= 3; ++T)
            for (size_t n : {7, 64, 301}) {
                std::vector<float> x(n);
                for (size_t e = 0; e < n; ++e) x[e] = float(int((e * 3 + T) % 7) - 3);
                check_quantize_act(x, k, T, "integers");
            }
}

// Half the elements at +-v and half at 0 give greedy scales alpha_0 = alpha_1 =
// v/2, so two combinations share the value 0 (+0.0 both): the levels' tie, in
// which the larger combination takes the lower rank, decides the codes of the
// zeros. Also with the zeros and the +-v in runs, and with a tail.
TEST(QuantizeAct, EqualScalesTieTheLevels) {
    for (int k = 1; k <= 2; ++k)
        for (int T = 0; T <= 3; ++T)
            for (size_t n : {2, 8, 64, 130, 301})
                for (float v : {1.0f, -3.0f, 0.375f}) {
                    std::vector<float> alternating(n), runs(n);
                    for (size_t e = 0; e < n; ++e) {
                        alternating[e] = e % 2 ? 0.0f : (e % 4 ? -v : v);
                        runs[e] = (e / 8) % 2 ? 0.0f : ((e / 16) % 2 ? -v : v);
                    }
                    check_quantize_act(alternating, k, T, "alternating " + std::to_string(v));
                    check_quantize_act(runs, k, T, "runs " + std::to_string(v));
                }
}

TEST_P(QuantizeActBits, NanAndInfAreErrors) {
    const int k = GetParam();
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
        auto x = normal(100, 5);
        x[37] = bad;
        BinaryVector out;
        EXPECT_THROW(quantize_act(x.data(), x.size(), k, 2, out), Error);
    }
}

// A batch in one call gives every item exactly what a call per vector gives:
// items of different scales (a zero and a constant vector among them), strides
// with and without room for the padding, into the middle of a larger batch
// whose other items stay as they were. n = 1024 with 9 items takes two batch
// kernel calls (8 + 1: 32 KB of inputs a call), n = 9000 a call per vector.
TEST_P(QuantizeActBits, BatchMatchesOneCallPerVector) {
    const int k = GetParam();
    for (int T = 0; T <= 3; ++T)
        for (size_t n : {1, 63, 64, 65, 130, 300, 1024, 9000})
            for (size_t items : {1, 3, 9})
                for (size_t stride : {n, n + 5, (n + 63) / 64 * 64 + 64}) {
                    std::vector<float> x(items * stride, 7.0f);
                    for (size_t i = 0; i < items; ++i) {
                        const auto v = normal(n, uint32_t(n * 31 + i * 7 + k + T),
                                              i == 2 ? 1e30f : float(i + 1));
                        for (size_t e = 0; e < n; ++e)
                            x[i * stride + e] = i == 1 ? 0.0f : i == 4 ? -2.5f : v[e];
                    }
                    BinaryBatch out;
                    out.resize(k, n, items + 2);
                    std::fill(out.planes.begin(), out.planes.end(), 0x5a5a5a5a5a5a5a5aull);
                    std::fill(out.beta.begin(), out.beta.end(), 42.0f);
                    quantize_act_batch(x.data(), n, stride, items, k, T, out, 1);
                    const size_t iw = size_t(k) * out.words();
                    const std::string what = "k=" + std::to_string(k) + " T=" + std::to_string(T) +
                                             " n=" + std::to_string(n) +
                                             " items=" + std::to_string(items) +
                                             " stride=" + std::to_string(stride);
                    for (size_t i = 0; i < items; ++i) {
                        BinaryVector one;
                        quantize_act(&x[i * stride], n, k, T, one);
                        for (int j = 0; j < k; ++j)
                            ASSERT_EQ(out.beta[(i + 1) * k + j], one.beta[j])
                                << what << " item " << i;
                        for (size_t w = 0; w < iw; ++w)
                            ASSERT_EQ(out.planes[(i + 1) * iw + w], one.planes[w])
                                << what << " item " << i << " word " << w;
                    }
                    for (size_t b : {size_t(0), items + 1}) {  // not written
                        for (int j = 0; j < k; ++j) ASSERT_EQ(out.beta[b * k + j], 42.0f) << what;
                        for (size_t w = 0; w < iw; ++w)
                            ASSERT_EQ(out.planes[b * iw + w], 0x5a5a5a5a5a5a5a5aull) << what;
                    }
                }
}

TEST(QuantizeAct, TernaryBatchMatchesOneCallPerVector) {
    const size_t n = 77, items = 4;
    const auto x = normal(n * items, 11);
    BinaryBatch out;
    out.resize(2, n, items);
    quantize_act_batch(x.data(), n, n, items, 2, 0, out, 0, true);
    for (size_t i = 0; i < items; ++i) {
        BinaryVector one;
        quantize_act_ternary(&x[i * n], n, one);
        EXPECT_EQ(out.beta[i * 2], one.beta[0]) << i;
        EXPECT_EQ(out.beta[i * 2 + 1], one.beta[1]) << i;
        for (size_t w = 0; w < 2 * out.words(); ++w)
            EXPECT_EQ(out.planes[i * 2 * out.words() + w], one.planes[w]) << i;
    }
}

TEST(QuantizeAct, BatchErrorsNameWhatIsWrong) {
    const size_t n = 100;
    auto x = normal(n * 4, 3);
    BinaryBatch out;
    out.resize(2, n, 4);
    expect_error([&] { quantize_act_batch(x.data(), n, n - 1, 2, 2, 2, out); }, "x_stride = 99");
    expect_error([&] { quantize_act_batch(x.data(), n, n, 4, 2, 2, out, 1); },
                 "item 4 is past the batch of 4");
    expect_error([&] { quantize_act_batch(x.data(), n, n, 2, 3, 2, out); }, "k = 2");
    x[2 * n + 17] = std::nanf("");
    expect_error([&] { quantize_act_batch(x.data(), n, n, 4, 2, 2, out); },
                 "of item 2 (length 100) contains NaN or Inf");
    // No items: nothing to do, and nothing is written.
    std::fill(out.beta.begin(), out.beta.end(), 5.0f);
    quantize_act_batch(x.data(), n, n, 0, 2, 2, out);
    for (float b : out.beta) EXPECT_EQ(b, 5.0f);
}

INSTANTIATE_TEST_SUITE_P(K, QuantizeActBits, ::testing::Values(1, 2, 3, 4),
                         [](const auto &info) { return "a" + std::to_string(info.param); });

// ---- pack_bits and f32_gemv -------------------------------------------------

TEST(PackBits, MatchesReferencePacking) {
    for (size_t cols : spec::test_cols)
        for (size_t rows : {1, 7, 16}) {
            const int planes = 3;
            auto src = normal(planes * rows * cols, uint32_t(cols + rows));
            src[0] = 0.0f;  // sign(0) = +1
            std::vector<int8_t> codes(src.size());
            for (size_t e = 0; e < src.size(); ++e) codes[e] = src[e] >= 0 ? 1 : -1;
            EXPECT_EQ(pack_bits(src.data(), planes, rows, cols),
                      ref::pack_planes(codes.data(), planes, rows, cols))
                << rows << "x" << cols;
        }
}

TEST(PackBits, KernelLayoutMatchesModelLayout) {
    // pack_bits built for the bgemv layout writes what from_planes would repack.
    for (size_t rows : spec::test_rows)
        for (size_t cols : {size_t(1), size_t(64), size_t(65), size_t(1000)}) {
            const int kw = 3;
            auto src = normal(kw * rows * cols, uint32_t(rows + 7 * cols));
            std::vector<int8_t> codes(src.size());
            for (size_t e = 0; e < src.size(); ++e) codes[e] = src[e] >= 0 ? 1 : -1;
            auto planes = ref::pack_planes(codes.data(), kw, rows, cols);
            auto alpha = normal(rows * kw, 3);
            auto a = BinaryMatrix::from_codes(src.data(), alpha.data(), kw, rows, cols);
            auto b = BinaryMatrix::from_planes(planes.data(), alpha.data(), kw, rows, cols);
            ASSERT_EQ(a.kernel_planes(), b.kernel_planes()) << rows << "x" << cols;
            ASSERT_EQ(a.to_planes(), planes);
        }
}

namespace {

// f32_gemv on M packed once (FloatMatrix) against the product in double.
void expect_f32_gemv(const std::vector<float> &M, size_t rows, size_t cols,
                     const std::vector<float> &x, const float *bias, const std::string &what,
                     double abs_tol = 1e-6) {
    const FloatMatrix F = FloatMatrix::from_rows(M.data(), rows, cols, bias);
    std::vector<float> y(rows, std::nanf(""));
    f32_gemv(F, x.data(), cols, y.data());
    std::vector<double> scale;
    const std::vector<double> want = ref::float_gemv(M.data(), rows, cols, x.data(), bias, &scale);
    for (size_t r = 0; r < rows; ++r)
        ASSERT_NEAR(y[r], want[r], 1e-5 * scale[r] + abs_tol)
            << what << " " << rows << "x" << cols << " row " << r;
}

void check_f32_gemv(size_t rows, size_t cols, int threads) {
    auto M = normal(rows * cols, uint32_t(rows * 31 + cols));
    auto x = normal(cols, 3), b = normal(rows, 4);
    const std::string what = "threads " + std::to_string(threads);
    expect_f32_gemv(M, rows, cols, x, b.data(), what);
    expect_f32_gemv(M, rows, cols, x, nullptr, what + " no bias");
}

}  // namespace

TEST(F32Gemv, MatchesNaiveProduct) {
    // Two threads take the parallel variant where the matrix is large enough.
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (size_t rows : spec::test_rows)
            for (size_t cols : spec::test_cols)
                if (rows * cols <= 1024 * 1024) check_f32_gemv(rows, cols, threads);
    }
    set_num_threads(1);
}

TEST(F32Gemv, PanelRemaindersAndAnyColumns) {
    // Rows around the panel (the last panel padded with zero rows) and around
    // groups of several panels, any column count (no column tail in the
    // layout), and the language model's decoder.
    const size_t P = float_panel();
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (size_t rows : {size_t(1), P - 1, P, P + 1, 2 * P + 1, 3 * P - 1, 5 * P + 3})
            for (size_t cols : {1, 2, 7, 16, 17, 300, 1200}) check_f32_gemv(rows, cols, threads);
        for (size_t cols : {1, 7, 300, 1200}) check_f32_gemv(6022, cols, threads);
    }
    set_num_threads(1);
}

TEST(F32Gemv, ZerosAndExtremeValues) {
    const size_t rows = 2 * float_panel() + 3, cols = 301;
    const std::vector<float> zeros(rows * cols, 0.0f), x = normal(cols, 5);
    // All zeros: exactly the bias, or zeros.
    const std::vector<float> b = normal(rows, 6);
    std::vector<float> y(rows, 1.0f);
    f32_gemv(FloatMatrix::from_rows(zeros.data(), rows, cols, b.data()), x.data(), cols, y.data());
    EXPECT_EQ(y, b);
    f32_gemv(FloatMatrix::from_rows(zeros.data(), rows, cols), x.data(), cols, y.data());
    EXPECT_EQ(y, std::vector<float>(rows, 0.0f));
    // Near the float range: terms of +-1e36 that cancel but for one column,
    // and tiny ones (+-1e-15 x 1e-15, relative error only).
    std::vector<float> M(rows * cols), ones(cols, 1.0f), tiny(cols, 1e-15f);
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c)
            M[r * cols + c] = (c % 2 ? -1e36f : 1e36f) * float(1 + r % 3);
    expect_f32_gemv(M, rows, cols, ones, nullptr, "+-1e36");
    for (float &v : M) v = v > 0 ? 1e-15f : -3e-15f;
    expect_f32_gemv(M, rows, cols, tiny, nullptr, "1e-15 x 1e-15", 0.0);
    // One column of FLT_MAX, the others zero: exactly FLT_MAX per row.
    std::fill(M.begin(), M.end(), 0.0f);
    for (size_t r = 0; r < rows; ++r) M[r * cols + cols - 1] = std::numeric_limits<float>::max();
    f32_gemv(FloatMatrix::from_rows(M.data(), rows, cols), ones.data(), cols, y.data());
    EXPECT_EQ(y, std::vector<float>(rows, std::numeric_limits<float>::max()));
}

TEST(F32Gemv, PacksRowPanels) {
    // [panels][cols][panel] with zero rows past the last, and the row-major
    // entry (which packs per call) gives what the packed matrix gives.
    const size_t P = float_panel(), rows = P + 3, cols = 5;
    const auto M = normal(rows * cols, 9), x = normal(cols, 10), b = normal(rows, 11);
    const FloatMatrix F = FloatMatrix::from_rows(M.data(), rows, cols, b.data());
    ASSERT_EQ(F.panel(), P);
    ASSERT_EQ(F.panels(), 2u);
    ASSERT_EQ(F.packed().size(), 2 * cols * P);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(F.packed().data()) % 64, 0u);
    for (size_t q = 0; q < 2; ++q)
        for (size_t c = 0; c < cols; ++c)
            for (size_t p = 0; p < P; ++p) {
                const size_t r = q * P + p;
                EXPECT_EQ(F.packed()[(q * cols + c) * P + p], r < rows ? M[r * cols + c] : 0.0f)
                    << "row " << r << " col " << c;
            }
    EXPECT_EQ(F.bias(), b);
    EXPECT_EQ(F.bytes(), (2 * cols * P + rows) * sizeof(float));
    std::vector<float> y1(rows), y2(rows);
    f32_gemv(F, x.data(), cols, y1.data());
    f32_gemv(M.data(), rows, cols, x.data(), b.data(), y2.data());
    EXPECT_EQ(y1, y2);
}

TEST(Bgemv, ParallelVariantMatchesReference) {
    set_num_threads(2);
    check_bgemv(2, 2, 4096, 1000, 77, true);  // 1 MB of weights: parallel
    check_bgemv(3, 1, 1023, 4097, 78, false);
    set_num_threads(1);
}

// ---- bad input --------------------------------------------------------------

TEST(BadInput, ClearErrors) {
    auto W = random_planes(2, 8, 100, 1);
    std::vector<float> alpha(16, 1.0f);
    expect_error([&] { BinaryMatrix::from_planes(W.data(), alpha.data(), 5, 8, 100); }, "k_w = 5");
    expect_error([&] { BinaryMatrix::from_planes(W.data(), alpha.data(), 0, 8, 100); }, "k_w = 0");
    expect_error([&] { BinaryMatrix::from_planes(W.data(), alpha.data(), 2, 8, 0); }, "empty");
    auto dirty = W;
    dirty[1] |= 1ull << 63;  // past column 100
    expect_error([&] { BinaryMatrix::from_planes(dirty.data(), alpha.data(), 2, 8, 100); },
                 "padding");
    auto nan_alpha = alpha;
    nan_alpha[3] = std::nanf("");
    expect_error([&] { BinaryMatrix::from_planes(W.data(), nan_alpha.data(), 2, 8, 100); },
                 "alpha[1][1]");

    auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 2, 8, 100);
    std::vector<float> x(99, 1.0f), y(8);
    BinaryVector a;
    quantize_act(x.data(), 99, 2, 2, a);
    expect_error([&] { bgemv(M, a, y.data()); }, "activation length 99");
    expect_error([&] { quantize_act(x.data(), 0, 2, 2, a); }, "n = 0");
    expect_error([&] { quantize_act(x.data(), 99, 7, 2, a); }, "k_a = 7");
    expect_error([&] { quantize_act(x.data(), 99, 2, 9, a); }, "iters = 9");
    BinaryVector broken;
    broken.k = 2;
    broken.n = 100;
    expect_error([&] { bgemv(M, broken, y.data()); }, "expected 4 and 2");
    expect_error([&] { bgemv(BinaryMatrix(), a, y.data()); }, "empty");
    expect_error([&] { pack_bits(x.data(), 0, 1, 99); }, "planes = 0");
    expect_error([&] { f32_gemv(x.data(), 0, 99, x.data(), nullptr, y.data()); }, "empty");
    expect_error([&] { f32_gemv(nullptr, 8, 99, x.data(), nullptr, y.data()); }, "must not be null");
    expect_error([&] { FloatMatrix::from_rows(x.data(), 1, 0); }, "shape 1x0 is empty");
    expect_error([&] { FloatMatrix::from_rows(nullptr, 1, 99); }, "M is null");
    expect_error([&] { FloatMatrix::from_rows(x.data(), 1, 99, nullptr, 0); }, "panel = 0");
    const FloatMatrix F = FloatMatrix::from_rows(x.data(), 1, 99);
    expect_error([&] { f32_gemv(F, x.data(), 98, y.data()); }, "x has 98 values, expected 99");
    expect_error([&] { f32_gemv(F, nullptr, 99, y.data()); }, "must not be null");
    expect_error([&] { f32_gemv(F, x.data(), 99, nullptr); }, "must not be null");
    expect_error([&] { f32_gemv(FloatMatrix(), x.data(), 99, y.data()); }, "M is empty");
    const size_t other = float_panel() == 8 ? 16 : 8;
    expect_error([&] { f32_gemv(FloatMatrix::from_rows(x.data(), 1, 99, nullptr, other), x.data(), 99, y.data()); },
                 "the kernel reads panels of " + std::to_string(float_panel()));
}

// ---- per-problem variants (schedules file "variants", built for winners only) --

namespace {

// The variants linked into this build (none when its schedules file has none).
std::vector<KernelInfo> linked_variants() {
    std::vector<KernelInfo> out;
    for (const KernelInfo &k : linked_kernels())
        if (k.variant) out.push_back(k);
    return out;
}

int bits_at(const std::string &bits, char what) {
    return bits[bits.find(what) + 1] - '0';
}

}  // namespace

TEST(Variants, BoundAtPackingAndMatchReference) {
    const auto variants = linked_variants();
    // Exactly the variants the build generated (none for a schedules file without any).
    ASSERT_EQ(variants.size(), size_t(AMQ_BUILT_VARIANTS));
    for (const KernelInfo &v : variants) {
        const int kw = bits_at(v.bits, 'W'), ka = bits_at(v.bits, 'A');
        EXPECT_EQ(v.pipeline, "bgemv");
        // Bound to its shape and k_w; the tuned k_a runs the variant.
        const KernelInfo *bound = BinaryMatrix::variant_for(kw, ka, v.rows, v.cols);
        ASSERT_NE(bound, nullptr) << v.name;
        EXPECT_EQ(bound->name, v.name);
        // A row more or a column less: the common kernel.
        EXPECT_EQ(BinaryMatrix::variant_for(kw, ka, v.rows + 1, v.cols), nullptr) << v.name;
        EXPECT_EQ(BinaryMatrix::variant_for(kw, ka, v.rows, v.cols - 1), nullptr) << v.name;
        // Every k_a on the variant's matrix (the others run its layout's bgemm
        // kernels or the common ones), with and without bias.
        for (int a = 1; a <= 4; ++a) {
            check_bgemv(kw, a, v.rows, v.cols, uint32_t(100 + a), a % 2 == 0);
            check_bgemv(kw, a, v.rows + 1, v.cols, uint32_t(200 + a), true);
        }
        // from_codes packs for the variant's layout too.
        auto src = normal(size_t(kw) * v.rows * v.cols, 5);
        auto alpha = normal(v.rows * kw, 6);
        std::vector<int8_t> codes(src.size());
        for (size_t e = 0; e < src.size(); ++e) codes[e] = src[e] >= 0 ? 1 : -1;
        auto planes = ref::pack_planes(codes.data(), kw, v.rows, v.cols);
        auto a = BinaryMatrix::from_codes(src.data(), alpha.data(), kw, v.rows, v.cols);
        auto b = BinaryMatrix::from_planes(planes.data(), alpha.data(), kw, v.rows, v.cols);
        EXPECT_EQ(a.layout(), b.layout()) << v.name;
        ASSERT_EQ(a.kernel_planes(), b.kernel_planes()) << v.name;
        ASSERT_NE(a.variant(ka), nullptr) << v.name;
        EXPECT_EQ(a.variant(ka)->name, v.name);
        const auto knobs = v.knobs;
        EXPECT_NE(knobs.find("\"tile\": " + std::to_string(b.tile())), std::string::npos)
            << v.name << " " << knobs;
    }
}
