// The batched binary product (bgemm) and the fused LSTM / GRU cells against the
// scalar references (amq/reference.h, amq/reference_cell.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/reference_cell.h"
#include "amq/spec.h"
#include "kernel_testing.h"

using namespace amq;
using amq::testing::normal;
using amq::testing::random_planes;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

template <typename Fn>
void expect_error(Fn &&fn, const std::string &needle) {
    amq::testing::expect_throw_with<Error>(fn, needle);
}

// B items of `size` values at `stride` floats apart, from `values` [B][size];
// the gaps between items hold NaN, so a kernel that reads them shows it.
std::vector<float> strided(const std::vector<float> &values, size_t B, size_t size, size_t stride) {
    std::vector<float> out(B * stride, kNaN);
    for (size_t b = 0; b < B; ++b)
        std::copy(values.begin() + b * size, values.begin() + (b + 1) * size,
                  out.begin() + b * stride);
    return out;
}

}  // namespace

// ---- bgemm --------------------------------------------------------------------

namespace {

// bgemm over B random activation vectors against ref::binary_gemv per item, with
// the output written densely (y_stride 0), at the padded stride (direct) and
// past it (direct, gaps untouched).
void check_bgemm(int kw, int ka, size_t rows, size_t cols, size_t B, uint32_t seed) {
    auto W = random_planes(kw, rows, cols, seed);
    auto alpha = normal(rows * kw, seed + 1);
    auto bias = normal(rows, seed + 2);
    const bool with_bias = seed % 2;
    BinaryMatrix M = BinaryMatrix::from_planes(W.data(), alpha.data(), kw, rows, cols,
                                               with_bias ? bias.data() : nullptr);
    BinaryBatch a;
    a.resize(ka, cols, B);
    auto A = random_planes(ka, B, cols, seed + 3);  // [ka][B][words]: regrouped below
    auto beta = normal(B * ka, seed + 4);
    const size_t words = ref::words_for(cols);
    for (size_t b = 0; b < B; ++b)
        for (int j = 0; j < ka; ++j)
            std::copy(A.begin() + (j * B + b) * words, A.begin() + (j * B + b + 1) * words,
                      a.planes.begin() + (b * ka + j) * words);
    a.beta = beta;

    const size_t padded = M.rows_padded();
    for (size_t stride : {size_t(0), padded, padded + 3}) {
        const size_t st = stride ? stride : rows;
        std::vector<float> y(B * st, kNaN);
        bgemm(M, a, y.data(), stride);
        const std::string what = "w" + std::to_string(kw) + "a" + std::to_string(ka) + " " +
                                 std::to_string(rows) + "x" + std::to_string(cols) +
                                 " B=" + std::to_string(B) + " y_stride=" + std::to_string(stride);
        size_t bad = 0;
        for (size_t b = 0; b < B; ++b) {
            const uint64_t *Ab = a.planes.data() + b * ka * words;
            const float *bb = a.beta.data() + b * ka;
            auto expect = ref::binary_gemv(W.data(), alpha.data(), kw, rows, Ab, bb, ka, cols,
                                           with_bias ? bias.data() : nullptr);
            for (size_t r = 0; r < rows; ++r) {
                double scale = 0;
                for (int i = 0; i < kw; ++i)
                    for (int j = 0; j < ka; ++j)
                        scale += std::abs(double(alpha[r * kw + i]) * bb[j]) * double(cols);
                const float got = y[b * st + r];
                if (!(std::abs(got - expect[r]) <= amq::testing::tol(scale))) {
                    if (bad < 3)
                        ADD_FAILURE() << what << " item " << b << " row " << r << ": kernel " << got
                                      << " reference " << expect[r];
                    ++bad;
                }
            }
            // Padding rows of the direct path are zeros; gaps past them untouched.
            for (size_t r = rows; r < st; ++r) {
                const float v = y[b * st + r];
                if (stride && r < padded)
                    EXPECT_EQ(v, 0.0f) << what << " item " << b << " padding row " << r;
                else
                    EXPECT_TRUE(std::isnan(v)) << what << " item " << b << " gap " << r;
            }
        }
        EXPECT_EQ(bad, 0u) << what;
    }
}

}  // namespace

class BgemmBits : public ::testing::TestWithParam<spec::Bits> {};

TEST_P(BgemmBits, MatchesReferencePerItem) {
    const auto bits = GetParam();
    uint32_t seed = 1000 + 17 * bits.w + bits.a;
    for (size_t B : {1, 2, 3, 5, 8})
        for (size_t rows : {1, 7, 129})
            for (size_t cols : {1, 65, 1000}) check_bgemm(bits.w, bits.a, rows, cols, B, seed++);
}

INSTANTIATE_TEST_SUITE_P(AllBitPairs, BgemmBits, ::testing::ValuesIn(spec::all_bits()),
                         [](const auto &info) {
                             return "w" + std::to_string(info.param.w) + "a" +
                                    std::to_string(info.param.a);
                         });

// Matrices bound to a per-problem variant (its layout): bgemm for every k_a and
// batch, including the batch of one that bgemv's kernel runs.
TEST(Bgemm, VariantMatricesMatchReference) {
    size_t variants = 0;
    for (const KernelInfo &v : linked_kernels()) {
        if (!v.variant) continue;
        ++variants;
        const int kw = v.bits[1] - '0';
        for (int ka = 1; ka <= 4; ++ka)
            for (size_t B : {size_t(1), size_t(3), size_t(8)})
                check_bgemm(kw, ka, v.rows, v.cols, B, uint32_t(ka * 10 + B));
    }
    // Exactly the variants the build generated (none for a schedules file without any).
    EXPECT_EQ(variants, size_t(AMQ_BUILT_VARIANTS));
}

TEST(Bgemm, EveryBatchTile) {
    // Batches 1..13 take every batch tile each kernel was built with (and the
    // last tile shifted inwards where the tile does not divide the batch).
    for (auto bits : spec::all_bits())
        for (size_t B = 1; B <= 13; ++B) check_bgemm(bits.w, bits.a, 17, 130, B, uint32_t(B));
}

TEST(Bgemm, ParallelVariantMatchesReference) {
    set_num_threads(2);
    check_bgemm(2, 2, 4096, 1000, 3, 91);  // 1 MB of weights: parallel
    check_bgemm(1, 3, 1023, 4097, 6, 92);
    set_num_threads(1);
}

TEST(Bgemm, EqualsBgemvOfEachItem) {
    // The same quantized vectors through both kernels give the same floats.
    const size_t rows = 300, cols = 777, B = 5;
    for (auto bits : spec::all_bits()) {
        auto W = random_planes(bits.w, rows, cols, 5);
        auto alpha = normal(rows * bits.w, 6);
        auto bias = normal(rows, 7);
        auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), bits.w, rows, cols, bias.data());
        BinaryBatch batch;
        batch.resize(bits.a, cols, B);
        std::vector<BinaryVector> vs(B);
        for (size_t b = 0; b < B; ++b) {
            auto x = normal(cols, uint32_t(40 + b));
            quantize_act(x.data(), cols, bits.a, 2, vs[b]);
            if (b % 2)
                batch.set(b, vs[b]);
            else
                quantize_act(x.data(), cols, bits.a, 2, batch, b);  // straight into item b
        }
        std::vector<float> y(B * rows), yv(rows);
        bgemm(M, batch, y.data());
        for (size_t b = 0; b < B; ++b) {
            bgemv(M, vs[b], yv.data());
            // Equal up to the order of float rounding (the kernels fuse differently).
            for (size_t r = 0; r < rows; ++r)
                ASSERT_NEAR(y[b * rows + r], yv[r], 1e-5 * (std::abs(yv[r]) + 1))
                    << "w" << bits.w << "a" << bits.a << " item " << b << " row " << r;
        }
    }
}

TEST(Bgemm, BadInput) {
    auto W = random_planes(2, 8, 100, 1);
    std::vector<float> alpha(16, 1.0f), y(64);
    auto M = BinaryMatrix::from_planes(W.data(), alpha.data(), 2, 8, 100);
    BinaryBatch a;
    a.resize(2, 100, 3);
    expect_error([&] { bgemm(M, a, nullptr); }, "y is null");
    expect_error([&] { bgemm(M, a, y.data(), 7); }, "y_stride = 7");
    expect_error([&] { bgemm(BinaryMatrix(), a, y.data()); }, "empty");
    BinaryBatch wrong_n;
    wrong_n.resize(2, 99, 3);
    expect_error([&] { bgemm(M, wrong_n, y.data()); }, "activation length 99");
    BinaryBatch wrong_k;
    wrong_k.resize(5, 100, 3);
    expect_error([&] { bgemm(M, wrong_k, y.data()); }, "k_a = 5");
    BinaryBatch empty;
    empty.resize(2, 100, 0);
    expect_error([&] { bgemm(M, empty, y.data()); }, "batch is empty");
    BinaryBatch short_planes = a;
    short_planes.planes.resize(5);
    expect_error([&] { bgemm(M, short_planes, y.data()); }, "expected 12 and 6");

    BinaryVector v;
    std::vector<float> x(100, 1.0f);
    quantize_act(x.data(), 100, 3, 2, v);
    expect_error([&] { a.set(0, v); }, "k = 3");
    quantize_act(x.data(), 100, 2, 2, v);
    expect_error([&] { a.set(3, v); }, "item 3 is past the batch of 3");
    expect_error([&] { quantize_act(x.data(), 100, 3, 2, a, 0); }, "expected k_a = 3");
    expect_error([&] { quantize_act(x.data(), 100, 2, 2, a, 4); }, "item 4");
    expect_error([&] { quantize_act(x.data(), 100, 2, 9, a, 0); }, "iters = 9");
}

// ---- lstm_cell and gru_cell ---------------------------------------------------

namespace {

// Tolerance of a cell output against the double reference: the kernels work in
// f32 (exp accurate to the last bit), so about 1e-7 of the magnitudes involved.
double cell_tol(double magnitude) { return 1e-6 * (1.0 + magnitude); }

struct CellCase {
    size_t H, B, gate_stride;  // gate_stride >= G H (0: dense)
    bool in_place;
};

// Runs the LSTM cell on gx, gh [B][4H] and c_prev [B][H] (laid out with the
// case's strides; outputs at stride H + 2 with sentinels in the gaps) and
// compares with ref::lstm_cell.
void check_lstm(const std::vector<float> &gx, const std::vector<float> &gh,
                const std::vector<float> &c_prev, const CellCase &cc, const std::string &what) {
    const size_t H = cc.H, B = cc.B, G = 4 * H, gs = cc.gate_stride ? cc.gate_stride : G;
    const auto gxs = strided(gx, B, G, gs), ghs = strided(gh, B, G, gs);
    const size_t os = H + 2;
    auto cs = strided(c_prev, B, H, os);
    std::vector<float> hs(B * os, kNaN), cout_sep(B * os, kNaN);
    FloatBatch c_out{cc.in_place ? cs.data() : cout_sep.data(), B, H, os};
    lstm_cell({gxs.data(), B, G, cc.gate_stride}, {ghs.data(), B, G, cc.gate_stride},
              {cs.data(), B, H, os}, {hs.data(), B, H, os}, c_out);
    std::vector<double> h_ref(H), c_ref(H);
    size_t bad = 0;
    for (size_t b = 0; b < B; ++b) {
        ref::lstm_cell(gx.data() + b * G, gh.data() + b * G, c_prev.data() + b * H, H, h_ref.data(),
                       c_ref.data());
        for (size_t u = 0; u < H; ++u) {
            const float h = hs[b * os + u], c = c_out.data[b * os + u];
            const double mag = std::abs(c_prev[b * H + u]);
            if (!(std::abs(h - h_ref[u]) <= cell_tol(0)) ||
                !(std::abs(c - c_ref[u]) <= cell_tol(mag))) {
                if (bad < 3)
                    ADD_FAILURE() << what << " H=" << H << " B=" << B << " item " << b << " unit "
                                  << u << ": h " << h << " vs " << h_ref[u] << ", c " << c << " vs "
                                  << c_ref[u];
                ++bad;
            }
        }
        for (size_t u = H; u < os; ++u) {
            EXPECT_TRUE(std::isnan(hs[b * os + u])) << what << " h gap written";
            EXPECT_TRUE(std::isnan(c_out.data[b * os + u])) << what << " c gap written";
        }
    }
    EXPECT_EQ(bad, 0u) << what << " H=" << H << " B=" << B << " gate stride " << gs
                       << (cc.in_place ? " in place" : "");
}

void check_gru(const std::vector<float> &gx, const std::vector<float> &gh,
               const std::vector<float> &h_prev, const CellCase &cc, const std::string &what) {
    const size_t H = cc.H, B = cc.B, G = 3 * H, gs = cc.gate_stride ? cc.gate_stride : G;
    const auto gxs = strided(gx, B, G, gs), ghs = strided(gh, B, G, gs);
    const size_t os = H + 2;
    auto hp = strided(h_prev, B, H, os);
    std::vector<float> h_sep(B * os, kNaN);
    float *h_out = cc.in_place ? hp.data() : h_sep.data();
    gru_cell({gxs.data(), B, G, cc.gate_stride}, {ghs.data(), B, G, cc.gate_stride},
             {hp.data(), B, H, os}, {h_out, B, H, os});
    std::vector<double> h_ref(H);
    size_t bad = 0;
    for (size_t b = 0; b < B; ++b) {
        ref::gru_cell(gx.data() + b * G, gh.data() + b * G, h_prev.data() + b * H, H, h_ref.data());
        for (size_t u = 0; u < H; ++u) {
            const float h = h_out[b * os + u];
            if (!(std::abs(h - h_ref[u]) <= cell_tol(std::abs(h_prev[b * H + u])))) {
                if (bad < 3)
                    ADD_FAILURE() << what << " H=" << H << " B=" << B << " item " << b << " unit "
                                  << u << ": h " << h << " vs " << h_ref[u];
                ++bad;
            }
        }
        for (size_t u = H; u < os; ++u)
            EXPECT_TRUE(std::isnan(h_out[b * os + u])) << what << " h gap written";
    }
    EXPECT_EQ(bad, 0u) << what << " H=" << H << " B=" << B << " gate stride " << gs
                       << (cc.in_place ? " in place" : "");
}

const size_t kHidden[] = {1, 7, 64, 129, 300, 1024};

// Gate strides: dense, the padded stride of a bgemm output (tile 8), and more.
std::vector<size_t> gate_strides(size_t G) { return {0, (G + 7) / 8 * 8, G + 13}; }

}  // namespace

TEST(LstmCell, MatchesReference) {
    uint32_t seed = 1;
    for (size_t H : kHidden)
        for (size_t B : {1, 3})
            for (size_t gs : gate_strides(4 * H))
                for (bool in_place : {false, true}) {
                    auto gx = normal(B * 4 * H, seed++, 2.0f), gh = normal(B * 4 * H, seed++);
                    auto c = normal(B * H, seed++, 1.5f);
                    check_lstm(gx, gh, c, {H, B, gs, in_place}, "normal");
                }
}

TEST(LstmCell, SaturatesWithoutNaN) {
    // Pre-activations up to +-80 (and beyond, where exp overflows): the gates
    // saturate to 0 / 1 / +-1, no NaN; c_prev large too.
    const std::vector<float> v = {-1e30f, -1e4f, -88.f, -80.f, -40.f, -1.f, 0.f,
                                  1.f,    40.f,  80.f,  88.f,  1e4f,  1e30f};
    for (size_t B : {1, 3}) {
        const size_t H = 300;
        std::vector<float> gx(B * 4 * H), gh(B * 4 * H), c(B * H);
        for (size_t e = 0; e < gx.size(); ++e) {
            gx[e] = v[(e * 7) % v.size()];
            gh[e] = (e % 3 == 0) ? v[(e * 5) % v.size()] : 0.0f;
            if (std::abs(gx[e]) > 1e4f) gh[e] = 0.0f;  // keep the sums finite
        }
        for (size_t e = 0; e < c.size(); ++e) c[e] = (e % 2 ? -1.0f : 1.0f) * float(e % 50) * 20;
        check_lstm(gx, gh, c, {H, B, 0, false}, "extreme");
        check_lstm(gx, gh, c, {H, B, 4 * H + 1, true}, "extreme");
        // h and c finite everywhere.
        std::vector<float> h(B * H), cn(B * H);
        lstm_cell({gx.data(), B, 4 * H}, {gh.data(), B, 4 * H}, {c.data(), B, H}, {h.data(), B, H},
                  {cn.data(), B, H});
        for (size_t e = 0; e < h.size(); ++e) {
            ASSERT_TRUE(std::isfinite(h[e])) << "h[" << e << "]";
            ASSERT_TRUE(std::isfinite(cn[e])) << "c[" << e << "]";
            ASSERT_LE(std::abs(h[e]), 1.0f);
        }
    }
}

TEST(GruCell, MatchesReference) {
    uint32_t seed = 500;
    for (size_t H : kHidden)
        for (size_t B : {1, 3})
            for (size_t gs : gate_strides(3 * H))
                for (bool in_place : {false, true}) {
                    auto gx = normal(B * 3 * H, seed++, 2.0f), gh = normal(B * 3 * H, seed++);
                    auto h = normal(B * H, seed++);
                    check_gru(gx, gh, h, {H, B, gs, in_place}, "normal");
                }
}

TEST(GruCell, SaturatesWithoutNaN) {
    const std::vector<float> v = {-1e30f, -1e4f, -88.f, -80.f, -40.f, -1.f, 0.f,
                                  1.f,    40.f,  80.f,  88.f,  1e4f,  1e30f};
    for (size_t B : {1, 3}) {
        const size_t H = 129;
        std::vector<float> gx(B * 3 * H), gh(B * 3 * H), hp(B * H);
        for (size_t e = 0; e < gx.size(); ++e) {
            gx[e] = v[(e * 7) % v.size()];
            gh[e] = v[(e * 11) % v.size()];
            // Keep gx_n + r gh_n finite (r may be 1).
            if (std::abs(gx[e]) > 1e4f || std::abs(gh[e]) > 1e4f) gh[e] = 0.0f;
        }
        for (size_t e = 0; e < hp.size(); ++e) hp[e] = e % 3 ? -1.0f : 0.5f;
        check_gru(gx, gh, hp, {H, B, 0, false}, "extreme");
        check_gru(gx, gh, hp, {H, B, 3 * H + 3, true}, "extreme");
        std::vector<float> h(B * H);
        gru_cell({gx.data(), B, 3 * H}, {gh.data(), B, 3 * H}, {hp.data(), B, H}, {h.data(), B, H});
        for (size_t e = 0; e < h.size(); ++e) ASSERT_TRUE(std::isfinite(h[e])) << "h[" << e << "]";
    }
}

TEST(Cells, NaNPropagates) {
    // A NaN pre-activation gives NaN in its unit only (garbage in is not hidden).
    const size_t H = 37, B = 2;
    for (int gate = 0; gate < 4; ++gate) {
        auto gx = normal(B * 4 * H, 1), gh = normal(B * 4 * H, 2), c = normal(B * H, 3);
        gx[4 * H + gate * H + 5] = kNaN;  // item 1, unit 5
        std::vector<float> h(B * H), cn(B * H);
        lstm_cell({gx.data(), B, 4 * H}, {gh.data(), B, 4 * H}, {c.data(), B, H}, {h.data(), B, H},
                  {cn.data(), B, H});
        for (size_t e = 0; e < B * H; ++e) {
            const bool hit = e == H + 5;
            EXPECT_EQ(std::isnan(h[e]), hit) << "lstm gate " << gate << " h[" << e << "]";
            // The output gate does not reach c.
            EXPECT_EQ(std::isnan(cn[e]), hit && gate != 3)
                << "lstm gate " << gate << " c[" << e << "]";
        }
        if (gate == 3) continue;
        auto gx3 = normal(B * 3 * H, 4), gh3 = normal(B * 3 * H, 5);
        (gate == 2 ? gh3 : gx3)[3 * H + gate * H + 5] = kNaN;  // gh_n: through r gh_n
        std::vector<float> g(B * H);
        gru_cell({gx3.data(), B, 3 * H}, {gh3.data(), B, 3 * H}, {c.data(), B, H},
                 {g.data(), B, H});
        for (size_t e = 0; e < B * H; ++e)
            EXPECT_EQ(std::isnan(g[e]), e == H + 5) << "gru gate " << gate << " h[" << e << "]";
    }
}

TEST(Cells, InPlaceEqualsSeparateOutput) {
    const size_t H = 129, B = 3;
    auto gx = normal(B * 4 * H, 1, 2.0f), gh = normal(B * 4 * H, 2), c = normal(B * H, 3);
    std::vector<float> h1(B * H), c1(B * H), h2(B * H), c2 = c;
    lstm_cell({gx.data(), B, 4 * H}, {gh.data(), B, 4 * H}, {c.data(), B, H}, {h1.data(), B, H},
              {c1.data(), B, H});
    lstm_cell({gx.data(), B, 4 * H}, {gh.data(), B, 4 * H}, {c2.data(), B, H}, {h2.data(), B, H},
              {c2.data(), B, H});
    EXPECT_EQ(h1, h2);
    EXPECT_EQ(c1, c2);
    std::vector<float> g1(B * H), hp = c;
    gru_cell({gx.data(), B, 3 * H}, {gh.data(), B, 3 * H}, {c.data(), B, H}, {g1.data(), B, H});
    gru_cell({gx.data(), B, 3 * H}, {gh.data(), B, 3 * H}, {hp.data(), B, H}, {hp.data(), B, H});
    EXPECT_EQ(g1, hp);
}

TEST(Cells, BadInputNamesTheArgument) {
    const size_t H = 10, B = 2;
    std::vector<float> gx(B * 4 * H), gh(B * 4 * H), c(B * H), h(B * H), cn(B * H);
    auto lstm = [&](ConstFloatBatch x, ConstFloatBatch y, ConstFloatBatch cp, FloatBatch ho,
                    FloatBatch co) { lstm_cell(x, y, cp, ho, co); };
    ConstFloatBatch GX{gx.data(), B, 4 * H}, GH{gh.data(), B, 4 * H}, CP{c.data(), B, H};
    FloatBatch HO{h.data(), B, H}, CO{cn.data(), B, H};
    lstm(GX, GH, CP, HO, CO);  // well-formed: no error
    expect_error(
        [&] {
            lstm({gx.data(), B, 4 * H - 1}, GH, CP, HO, CO);
        },
        "lstm_cell: gx has 39 values per item (expected 4 x hidden = 40");
    expect_error([&] { lstm(GX, {gh.data(), B, 3 * H}, CP, HO, CO); }, "lstm_cell: gh has 30");
    expect_error(
        [&] {
            lstm(GX, {gh.data(), 3, 4 * H}, CP, HO, CO);
        },
        "lstm_cell: gh has batch 3 (expected 2, the batch of c_prev)");
    expect_error([&] { lstm(GX, GH, CP, {h.data(), 1, H}, CO); }, "lstm_cell: h_out has batch 1");
    expect_error(
        [&] {
            lstm(GX, GH, CP, HO, {cn.data(), B, H + 1});
        },
        "lstm_cell: c_out has 11 values");
    expect_error(
        [&] {
            lstm({gx.data(), B, 4 * H, 4 * H - 2}, GH, CP, HO, CO);
        },
        "lstm_cell: gx has stride 38");
    expect_error([&] { lstm({nullptr, B, 4 * H}, GH, CP, HO, CO); }, "lstm_cell: gx.data is null");
    expect_error(
        [&] {
            lstm(GX, GH, {c.data(), B, 0}, HO, CO);
        },
        "lstm_cell: c_prev has 2 items of 0");
    expect_error([&] { lstm(GX, GH, {c.data(), 0, H}, HO, CO); }, "batch >= 1");
    expect_error([&] { lstm(GX, GH, CP, {gx.data(), B, H}, CO); }, "h_out overlaps gx");
    expect_error([&] { lstm(GX, GH, CP, HO, {h.data(), B, H}); }, "h_out overlaps c_out");
    expect_error([&] { lstm(GX, GH, CP, HO, {c.data() + 1, B, H}); }, "c_out overlaps c_prev");
    expect_error([&] { lstm(GX, GH, CP, HO, {c.data(), B, H, H + 1}); }, "c_out overlaps c_prev");

    auto gru = [&](ConstFloatBatch x, ConstFloatBatch y, ConstFloatBatch hp, FloatBatch ho) {
        gru_cell(x, y, hp, ho);
    };
    ConstFloatBatch GX3{gx.data(), B, 3 * H}, GH3{gh.data(), B, 3 * H}, HP{c.data(), B, H};
    gru(GX3, GH3, HP, HO);
    gru(GX3, GH3, HP, {c.data(), B, H});  // in place
    expect_error([&] { gru(GX, GH3, HP, HO); },
                 "gru_cell: gx has 40 values per item (expected 3 x hidden = 30");
    expect_error(
        [&] {
            gru(GX3, {gh.data(), 1, 3 * H}, HP, HO);
        },
        "gru_cell: gh has batch 1 (expected 2, the batch of h_prev)");
    expect_error([&] { gru(GX3, GH3, HP, {h.data(), 3, H}); }, "gru_cell: h_out has batch 3");
    expect_error([&] { gru(GX3, GH3, {nullptr, B, H}, HO); }, "gru_cell: h_prev.data is null");
    expect_error([&] { gru(GX3, GH3, HP, {gh.data() + 5, B, H}); }, "h_out overlaps gh");
    expect_error([&] { gru(GX3, GH3, HP, {c.data() + 3, B, H}); }, "h_out overlaps h_prev");
}

TEST(Cells, IsaCapIsHonoured) {
    // ctest runs this binary again under AMQ_ISA=avx2 and sse41: the kernels
    // above then ran on that variant (or a lower one the CPU has).
    const char *cap = std::getenv("AMQ_ISA");
    std::printf("kernels run on %s\n", isa_name(active_isa()));
    if (cap && !std::strcmp(cap, "sse41")) EXPECT_EQ(active_isa(), Isa::sse41);
    if (cap && !std::strcmp(cap, "avx2")) EXPECT_LE(int(active_isa()), int(Isa::avx2));
}
