// bgemv built with other knobs than the defaults -- every weight layout, other
// tile heights, unrolled and parallel word loops -- against the reference. The
// variants are built by tests/CMakeLists.txt from the same generator.
#include <gtest/gtest.h>

#include <string>

#include "HalideBuffer.h"
#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/spec.h"
#include "kernel_testing.h"
#include "layout_variants.h"

using namespace amq;
using Halide::Runtime::Buffer;

namespace {

struct Variant {
    const char *name;
    KernelLayout layout;
    int k_w, k_a;
    decltype(&amq_variant_plane_major) fn;
};

const Variant kVariants[] = {
    {"plane_major_t8", {"plane_major", 8}, 2, 3, &amq_variant_plane_major},
    {"interleaved_t8", {"interleaved", 8}, 2, 3, &amq_variant_interleaved},
    {"tiled_t4", {"tiled", 4}, 2, 3, &amq_variant_tiled4},
    {"tiled_t16_unroll3", {"tiled", 16}, 2, 3, &amq_variant_tiled16_unroll3},
    {"tiled_t8_w4a1_par5", {"tiled", 8}, 4, 1, &amq_variant_tiled8_par5},
};

void PrintTo(const Variant &v, std::ostream *os) { *os << v.name; }

void run_variant(const Variant &v, size_t rows, size_t cols, bool parallel, uint32_t seed) {
    auto W = amq::testing::random_planes(v.k_w, rows, cols, seed);
    auto alpha = amq::testing::normal(rows * v.k_w, seed + 1);
    auto bias = amq::testing::normal(rows, seed + 2);
    auto A = amq::testing::random_planes(v.k_a, 1, cols, seed + 3);
    auto beta = amq::testing::normal(v.k_a, seed + 4);
    auto M =
        BinaryMatrix::from_planes(W.data(), alpha.data(), v.k_w, rows, cols, bias.data(), v.layout);
    const WeightStrides s = weight_strides(v.layout, v.k_w, M.tiles(), M.words());
    halide_dimension_t d[4] = {{0, M.tile(), int32_t(s.r)},
                               {0, v.k_w, int32_t(s.i)},
                               {0, int32_t(M.words()), int32_t(s.w)},
                               {0, int32_t(M.tiles()), int32_t(s.t)}};
    Buffer<uint64_t> wb(const_cast<uint64_t *>(M.kernel_planes().data()), 4, d);
    Buffer<float> ab(const_cast<float *>(M.kernel_alpha().data()), M.tile(), v.k_w, int(M.tiles()));
    Buffer<float> bb(const_cast<float *>(M.kernel_bias().data()), M.tile(), int(M.tiles()));
    Buffer<uint64_t> Ab(A.data(), int(M.words()), v.k_a);
    Buffer<float> betab(beta.data(), v.k_a);
    Buffer<float> y(M.tile(), int(M.tiles()));
    ASSERT_EQ(v.fn(wb, ab, bb, Ab, betab, int(cols), parallel, y), 0) << v.name;
    auto e = ref::binary_gemv(W.data(), alpha.data(), v.k_w, rows, A.data(), beta.data(), v.k_a,
                              cols, bias.data());
    for (size_t r = 0; r < rows; ++r) {
        double scale = 0;
        for (int i = 0; i < v.k_w; ++i)
            for (int j = 0; j < v.k_a; ++j)
                scale += std::abs(alpha[r * v.k_w + i] * beta[j]) * double(cols);
        ASSERT_NEAR(y(int(r % M.tile()), int(r / M.tile())), e[r], amq::testing::tol(scale))
            << v.name << " " << rows << "x" << cols << " row " << r;
    }
}

}  // namespace

class LayoutVariant : public ::testing::TestWithParam<Variant> {};

TEST_P(LayoutVariant, MatchesReference) {
    const Variant &v = GetParam();
    uint32_t seed = 1;
    for (size_t rows : spec::test_rows)
        for (size_t cols : {size_t(1), size_t(65), size_t(1000), size_t(4097)})
            for (bool par : {false, true}) {
                if (rows * cols > 1024 * 4097) continue;
                run_variant(v, rows, cols, par, seed++);
            }
}

TEST_P(LayoutVariant, RoundTripsToModelLayout) {
    const Variant &v = GetParam();
    auto W = amq::testing::random_planes(v.k_w, 37, 200, 9);
    std::vector<float> alpha(37 * v.k_w, 1.0f);
    auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), v.k_w, 37, 200, nullptr, v.layout);
    EXPECT_EQ(M.to_planes(), W);
}

INSTANTIATE_TEST_SUITE_P(Knobs, LayoutVariant, ::testing::ValuesIn(kVariants),
                         [](const auto &info) { return std::string(info.param.name); });

TEST(LayoutVariant, DefaultKernelsRefuseOtherLayouts) {
    auto W = amq::testing::random_planes(2, 8, 64, 1);
    std::vector<float> alpha(16, 1.0f), y(8);
    auto M =
        BinaryMatrix::from_planes(W.data(), alpha.data(), 2, 8, 64, nullptr, {"interleaved", 4});
    BinaryVector a;
    std::vector<float> x(64, 1.0f);
    quantize_act(x.data(), 64, 2, 2, a);
    EXPECT_THROW(bgemv(M, a, y.data()), Error);
    EXPECT_THROW(
        BinaryMatrix::from_planes(W.data(), alpha.data(), 2, 8, 64, nullptr, {"diagonal", 8}),
        Error);
}

// The Halide runtime's error path: a buffer of the wrong shape handed straight
// to a kernel returns an error code with a message (no abort), and the C++ API
// turns it into amq::Error.
TEST(HalideErrors, BadBufferIsAnErrorNotAnAbort) {
    (void)amq::active_isa();         // installs the error handler
    Buffer<uint64_t> W(8, 3, 4, 2);  // 3 planes: the variant wants 2
    Buffer<float> alpha(8, 2, 2), bias(8, 2), beta(3), y(8, 2);
    Buffer<uint64_t> A(4, 3);
    int status = amq_variant_tiled4(W, alpha, bias, A, beta, 200, false, y);
    EXPECT_NE(status, 0);
}
