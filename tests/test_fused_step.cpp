// The fused recurrent steps (lstm_step, gru_step, their batched kernels and the
// full steps from x_t; generators/rnn_step.h): the kernel against the separate
// kernels it replaces (bgemm + lstm_cell/gru_cell + quantize_act; for the full
// step quantize_act + bgemv first) on odd sizes and batches, and the
// runner using it against the scalar reference runner for every bit pair (built
// ones fused, the others on the separate kernels), LSTM and GRU, two layers,
// run() and step(), batch 1 and more; bad state buffers are clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "amq/quantize_model.h"
#include "kernel_testing.h"
#include "amq/reference_rnn.h"
#include "amq/rnn.h"

namespace amq {
namespace {

std::vector<float> uniform(size_t n, uint32_t seed, float lo, float hi) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (float &e : v) e = u(rng);
    return v;
}

// A random float model (PyTorch's init range), `layers` layers.
ModelFile random_model(Arch arch, int layers, size_t I, size_t H, uint32_t seed) {
    ModelFile m;
    m.shape.arch = arch;
    m.shape.layers = layers;
    m.shape.input_size = I;
    m.shape.hidden_size = H;
    const int64_t GH = int64_t(m.shape.gates() * H);
    const float r = 1.0f / std::sqrt(float(H));
    for (int l = 0; l < layers; ++l) {
        const std::string sl = std::to_string(l);
        const int64_t in = int64_t(m.shape.layer_input(l));
        m.floats["weight_ih_l" + sl] = {{GH, in}, uniform(size_t(GH * in), seed + 10 * l, -r, r)};
        m.floats["weight_hh_l" + sl] = {{GH, int64_t(H)},
                                        uniform(size_t(GH) * H, seed + 10 * l + 1, -r, r)};
        m.floats["bias_ih_l" + sl] = {{GH}, uniform(size_t(GH), seed + 10 * l + 2, -r, r)};
        m.floats["bias_hh_l" + sl] = {{GH}, uniform(size_t(GH), seed + 10 * l + 3, -r, r)};
    }
    return m;
}

ModelFile quantized(const ModelFile &f, int k_w, int k_a) {
    ModelQuantizeOptions o;
    o.weights.bits = k_w;
    o.weights.threads = 1;
    o.k_a = k_a;
    o.act_iters = 2;
    return quantize_model(f, o);
}

using amq::testing::max_abs_diff;

// ---- the kernel against the separate kernels -----------------------------------

struct StepCase {
    Arch arch;
    size_t H;
    int k_w, k_a;
    size_t B = 1;  // > 1: the batched kernels
};

// One step from a random state of B sequences: the fused kernel and bgemm + cell
// + quantize_act. gx's items are further apart than 4H (or 3H) floats.
void check_step_kernel(const StepCase &c) {
    const bool lstm = c.arch == Arch::lstm;
    const size_t G = lstm ? 4 : 3, H = c.H, B = c.B;
    SCOPED_TRACE(std::string(lstm ? "lstm" : "gru") + " H=" + std::to_string(H) + " W" +
                 std::to_string(c.k_w) + "A" + std::to_string(c.k_a) + " B=" + std::to_string(B));
    const std::vector<float> codes = uniform(size_t(c.k_w) * G * H * H, 1, -1, 1);
    const std::vector<float> alpha = uniform(G * H * size_t(c.k_w), 2, 0.01f, 0.1f);
    const std::vector<float> bias = uniform(G * H, 3, -0.5f, 0.5f);
    const BinaryMatrix W = BinaryMatrix::from_codes(codes.data(), alpha.data(), c.k_w, G * H, H,
                                                    bias.data());
    const std::vector<float> h_prev = uniform(B * H, 4, -1, 1), c_prev = uniform(B * H, 5, -2, 2);
    const size_t sx = W.rows_padded() + 3;  // gx's item stride
    std::vector<float> gx = uniform(B * sx, 6, -1, 1);
    BinaryBatch hq;
    hq.resize(c.k_a, H, B);
    for (size_t b = 0; b < B; ++b) quantize_act(&h_prev[b * H], H, c.k_a, 2, hq, b);

    // Separate kernels.
    const size_t sh = W.rows_padded();
    std::vector<float> gh(B * sh), h_sep(B * H), c_sep = c_prev;
    bgemm(W, hq, gh.data(), sh);
    if (lstm) {
        lstm_cell({gx.data(), B, G * H, sx}, {gh.data(), B, G * H, sh}, {c_sep.data(), B, H, H},
                  {h_sep.data(), B, H, H}, {c_sep.data(), B, H, H});
    } else {
        h_sep = h_prev;
        gru_cell({gx.data(), B, G * H, sx}, {gh.data(), B, G * H, sh}, {h_sep.data(), B, H, H},
                 {h_sep.data(), B, H, H});
    }
    BinaryBatch q_sep;
    q_sep.resize(c.k_a, H, B);
    for (size_t b = 0; b < B; ++b) quantize_act(&h_sep[b * H], H, c.k_a, 2, q_sep, b);

    // Fused.
    std::vector<float> h_fused = lstm ? std::vector<float>(B * H) : h_prev, c_fused = c_prev;
    BinaryBatch q_fused;
    if (lstm)
        lstm_step(W, hq, gx.data(), sx, c_fused.data(), h_fused.data(), q_fused, 2);
    else
        gru_step(W, hq, gx.data(), sx, h_fused.data(), q_fused, 2);

    EXPECT_LE(max_abs_diff(h_fused, h_sep), 1e-5);
    if (lstm) EXPECT_LE(max_abs_diff(c_fused, c_sep), 1e-5);
    ASSERT_EQ(q_fused.k, c.k_a);
    ASSERT_EQ(q_fused.n, H);
    ASSERT_EQ(q_fused.batch, B);
    const size_t item_words = size_t(c.k_a) * q_fused.words();
    for (size_t b = 0; b < B; ++b) {
        SCOPED_TRACE("item " + std::to_string(b));
        const std::vector<float> hf(&h_fused[b * H], &h_fused[b * H] + H),
            hs(&h_sep[b * H], &h_sep[b * H] + H);
        // The same planes unless h differs by rounding right at a midpoint.
        if (max_abs_diff(hf, hs) == 0) {
            EXPECT_EQ(std::vector<uint64_t>(q_fused.planes.begin() + b * item_words,
                                            q_fused.planes.begin() + (b + 1) * item_words),
                      std::vector<uint64_t>(q_sep.planes.begin() + b * item_words,
                                            q_sep.planes.begin() + (b + 1) * item_words));
            for (int j = 0; j < c.k_a; ++j)
                EXPECT_EQ(q_fused.beta[b * c.k_a + j], q_sep.beta[b * c.k_a + j]);
        }
        // Not vacuous: the state moved.
        EXPECT_GT(max_abs_diff(hf, std::vector<float>(H, 0.0f)), 1e-2);
    }
}

// The bit pairs the build has fused kernels for (schedules/manifest.json), by
// `built(k_w, k_a)`, at least one: the tests below are not vacuous.
template <typename Built>
std::vector<std::pair<int, int>> built_pairs(Built built) {
    std::vector<std::pair<int, int>> pairs;
    for (int k_w = 1; k_w <= 4; ++k_w)
        for (int k_a = 1; k_a <= 4; ++k_a)
            if (built(k_w, k_a)) pairs.push_back({k_w, k_a});
    EXPECT_FALSE(pairs.empty());
    return pairs;
}

// The pairs with fused steps for a batch of `batch` (at T = 2).
std::vector<std::pair<int, int>> step_pairs(size_t batch) {
    return built_pairs([batch](int k_w, int k_a) { return fused_step_built(k_w, k_a, 2, batch); });
}

TEST(FusedStep, MatchesTheSeparateKernels) {
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (auto [k_w, k_a] : step_pairs(1))
            // 1100: the product's and the cell's scratch past Halide's 16 KB of
            // stack (the heap then).
            for (size_t H : {1, 13, 64, 77, 130, 1100}) check_step_kernel({arch, H, k_w, k_a});
}

TEST(FusedStep, BatchedMatchesTheSeparateKernels) {
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (auto [k_w, k_a] : step_pairs(2)) {
            // Batches below, at and past the batch tile (with a last tile shifted
            // inwards), odd hidden sizes.
            for (size_t B : {2, 3, 7, 8})
                for (size_t H : {1, 13, 77, 130}) check_step_kernel({arch, H, k_w, k_a, B});
            check_step_kernel({arch, 1100, k_w, k_a, 3});
        }
}

// One full step (x_t in) against quantize_act + bgemv + the recurrent fused step,
// which the tests above hold to the separate kernels.
void check_full_step_kernel(Arch arch, size_t I, size_t H, int k_w, int k_a) {
    const bool lstm = arch == Arch::lstm;
    const size_t G = lstm ? 4 : 3;
    SCOPED_TRACE(std::string(lstm ? "lstm" : "gru") + " I=" + std::to_string(I) + " H=" +
                 std::to_string(H) + " W" + std::to_string(k_w) + "A" + std::to_string(k_a));
    auto matrix = [&](size_t cols, uint32_t seed) {
        const std::vector<float> codes = uniform(size_t(k_w) * G * H * cols, seed, -1, 1);
        const std::vector<float> alpha = uniform(G * H * size_t(k_w), seed + 1, 0.01f, 0.1f);
        const std::vector<float> bias = uniform(G * H, seed + 2, -0.5f, 0.5f);
        return BinaryMatrix::from_codes(codes.data(), alpha.data(), k_w, G * H, cols, bias.data());
    };
    const BinaryMatrix W_ih = matrix(I, 10), W_hh = matrix(H, 20);
    const std::vector<float> x = uniform(I, 4, -2, 2), h_prev = uniform(H, 5, -1, 1),
                             c_prev = uniform(H, 6, -2, 2);
    BinaryBatch hq;
    hq.resize(k_a, H, 1);
    quantize_act(h_prev.data(), H, k_a, 2, hq, 0);

    // quantize_act + bgemv, then the recurrent step on gx.
    BinaryVector xq;
    quantize_act(x.data(), I, k_a, 2, xq);
    std::vector<float> gx(W_ih.rows_padded());
    bgemv(W_ih, xq, gx.data());
    std::vector<float> h_sep = lstm ? std::vector<float>(H) : h_prev, c_sep = c_prev;
    BinaryBatch q_sep;
    if (lstm)
        lstm_step(W_hh, hq, gx.data(), gx.size(), c_sep.data(), h_sep.data(), q_sep, 2);
    else
        gru_step(W_hh, hq, gx.data(), gx.size(), h_sep.data(), q_sep, 2);

    std::vector<float> h_full = lstm ? std::vector<float>(H) : h_prev, c_full = c_prev;
    BinaryBatch q_full;
    if (lstm)
        lstm_full_step(W_ih, W_hh, x.data(), hq, c_full.data(), h_full.data(), q_full, 2);
    else
        gru_full_step(W_ih, W_hh, x.data(), hq, h_full.data(), q_full, 2);

    EXPECT_LE(max_abs_diff(h_full, h_sep), 1e-5);
    if (lstm) EXPECT_LE(max_abs_diff(c_full, c_sep), 1e-5);
    ASSERT_EQ(q_full.k, k_a);
    ASSERT_EQ(q_full.n, H);
    ASSERT_EQ(q_full.batch, 1u);
    if (max_abs_diff(h_full, h_sep) == 0) {
        EXPECT_EQ(std::vector<uint64_t>(q_full.planes.begin(),
                                        q_full.planes.begin() + k_a * q_full.words()),
                  std::vector<uint64_t>(q_sep.planes.begin(),
                                        q_sep.planes.begin() + k_a * q_sep.words()));
        for (int j = 0; j < k_a; ++j) EXPECT_EQ(q_full.beta[j], q_sep.beta[j]);
    }
    EXPECT_GT(max_abs_diff(h_full, std::vector<float>(H, 0.0f)), 1e-2);
}

TEST(FusedStep, FullStepMatchesQuantizeProductAndStep) {
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (auto [k_w, k_a] :
             built_pairs([](int w, int a) { return fused_full_step_built(w, a, 2); }))
            // Input sizes apart from H, below, at and past a word; 1100: scratch
            // past Halide's 16 KB of stack.
            for (auto [I, H] : std::vector<std::pair<size_t, size_t>>{
                     {1, 1}, {19, 70}, {64, 13}, {130, 77}, {300, 64}, {1100, 1100}})
                check_full_step_kernel(arch, I, H, k_w, k_a);
}

TEST(FusedStep, BadFullStepInputsAreClearErrors) {
    const size_t I = 30, H = 20;
    auto matrix = [&](size_t rows, size_t cols, int k) {
        const std::vector<float> codes = uniform(size_t(k) * rows * cols, 1, -1, 1);
        const std::vector<float> alpha = uniform(rows * size_t(k), 2, 0.01f, 0.1f);
        return BinaryMatrix::from_codes(codes.data(), alpha.data(), k, rows, cols);
    };
    const BinaryMatrix W_ih = matrix(4 * H, I, 2), W_hh = matrix(4 * H, H, 2);
    std::vector<float> x(I, 0.5f), c(H), h(H);
    BinaryBatch hq, next;
    hq.resize(2, H, 1);
    auto expect_error = [](auto f, const std::string &what) {
        amq::testing::expect_throw_with<Error>(f, what);
    };
    expect_error([&] { lstm_full_step(W_ih, W_hh, nullptr, hq, c.data(), h.data(), next, 2); },
                 "lstm_full_step: x is null");
    expect_error([&] { lstm_full_step(W_ih, matrix(4 * H, H, 3), x.data(), hq, c.data(), h.data(),
                                      next, 2); },
                 "k_w = 2 (expected 80 rows, as W_hh, and k_w = 3)");
    expect_error([&] { lstm_full_step(matrix(3 * H, I, 2), W_hh, x.data(), hq, c.data(),
                                      h.data(), next, 2); },
                 "W_ih is 60x30");
    expect_error([&] { gru_full_step(matrix(3 * H, I, 2), matrix(3 * H, H, 2), x.data(), hq,
                                     nullptr, next, 2); },
                 "must not be null");
    BinaryBatch h2;
    h2.resize(2, H, 2);
    expect_error([&] { lstm_full_step(W_ih, W_hh, x.data(), h2, c.data(), h.data(), next, 2); },
                 "a full step is batch 1");
    expect_error([&] { lstm_full_step(W_ih, W_hh, x.data(), hq, c.data(), h.data(), next, 1); },
                 "see fused_full_step_built");
    expect_error([&] { lstm_full_step(W_ih, W_hh, x.data(), hq, c.data(), h.data(), hq, 2); },
                 "must not be h_q");
    std::vector<float> bad = x;
    bad[7] = std::nanf("");
    expect_error([&] { lstm_full_step(W_ih, W_hh, bad.data(), hq, c.data(), h.data(), next, 2); },
                 "contains NaN or Inf (from x_t or the state)");
}

TEST(FusedStep, SomeBitPairsAreBuilt) {
    // The build instantiates the fused steps for W2A2 at least (schedules/manifest.json:
    // lstm_step, gru_step and their _batch forms).
    EXPECT_TRUE(fused_step_built(2, 2, 2));
    EXPECT_TRUE(fused_step_built(2, 2, 2, 8));
    EXPECT_FALSE(fused_step_built(2, 2, 2, 0));
    EXPECT_FALSE(fused_step_built(2, 2, 5, 8));
    EXPECT_TRUE(fused_full_step_built(2, 2, 2));
    EXPECT_FALSE(fused_full_step_built(2, 2, 5));
    EXPECT_TRUE(fused_step_built(2, 3, 2));  // the demo language model's bits
    EXPECT_TRUE(fused_full_step_built(2, 3, 2));
    EXPECT_FALSE(fused_full_step_built(3, 2, 2));  // not built: the separate kernels
    EXPECT_FALSE(fused_step_built(1, 4, 2));
    EXPECT_FALSE(fused_step_built(2, 2, 5));
    EXPECT_FALSE(fused_step_built(0, 2, 2));
    // Sizes the kernels take (the refused ones need a matrix of more than 16 GB).
    const size_t H = 130;
    const std::vector<float> codes = uniform(2 * 4 * H * H, 3, -1, 1);
    const std::vector<float> alpha = uniform(4 * H * 2, 4, 0.01f, 0.1f);
    EXPECT_TRUE(fused_step_fits(BinaryMatrix::from_codes(codes.data(), alpha.data(), 2, 4 * H, H)));
}

TEST(FusedStep, BadStateBuffersAreClearErrors) {
    const size_t H = 20;
    const std::vector<float> codes = uniform(2 * 4 * H * H, 1, -1, 1);
    const std::vector<float> alpha = uniform(4 * H * 2, 2, 0.01f, 0.1f);
    const BinaryMatrix W = BinaryMatrix::from_codes(codes.data(), alpha.data(), 2, 4 * H, H);
    std::vector<float> gx(W.rows_padded()), c(H), h(H);
    BinaryBatch hq, next;
    hq.resize(2, H, 1);
    auto expect_error = [](auto f, const std::string &what) {
        amq::testing::expect_throw_with<Error>(f, what);
    };
    expect_error([&] { lstm_step(W, hq, gx.data(), 4 * H - 1, c.data(), h.data(), next, 2); },
                 "gx has 79 floats");
    expect_error([&] { lstm_step(W, hq, gx.data(), gx.size(), c.data(), h.data(), hq, 2); },
                 "must not be h_q");
    expect_error([&] { gru_step(W, hq, gx.data(), gx.size(), h.data(), next, 2); },
                 "expected 3 x hidden");
    expect_error([&] { lstm_step(W, hq, gx.data(), gx.size(), c.data(), h.data(), next, 1); },
                 "no fused kernel");
    BinaryBatch h0;
    h0.resize(2, H, 0);
    expect_error([&] { lstm_step(W, h0, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
                 "batch 0");
    BinaryBatch h3;
    h3.resize(2, H, 3);
    expect_error([&] { lstm_step(W, h3, gx.data(), gx.size(), c.data(), h.data(), next, 1); },
                 "and batch 3");
    // A batch's planes and scales must hold every item.
    BinaryBatch h3_short = h3;
    h3_short.beta.resize(5);
    expect_error(
        [&] { lstm_step(W, h3_short, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
        "and 5 scales (expected 6 and 6 for batch 3)");
    BinaryBatch wrong_n;
    wrong_n.resize(2, H + 1, 1);
    expect_error([&] { lstm_step(W, wrong_n, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
                 "activation length 21");
    expect_error([&] { lstm_step(W, hq, gx.data(), gx.size(), nullptr, h.data(), next, 2); },
                 "must not be null");
    expect_error([&] { gru_step(W, hq, gx.data(), gx.size(), nullptr, next, 2); },
                 "must not be null");
    BinaryMatrix moved = BinaryMatrix::from_codes(codes.data(), alpha.data(), 2, 4 * H, H);
    const BinaryMatrix taken = std::move(moved);
    // (A moved-from matrix has lost its layout's name too: whichever check sees it first.)
    expect_error([&] { lstm_step(moved, hq, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
                 "lstm_step: ");
    // The runtime calls the kernels' unchecked copies: these are caught before them.
    BinaryBatch short_planes = hq;
    short_planes.planes.resize(1);
    expect_error(
        [&] { lstm_step(W, short_planes, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
        "h_q has 1 words");
    BinaryBatch short_scales = hq;
    short_scales.beta.resize(1);
    expect_error(
        [&] { lstm_step(W, short_scales, gx.data(), gx.size(), c.data(), h.data(), next, 2); },
        "and 1 scales");
    expect_error([&] { lstm_step(W, hq, nullptr, gx.size(), c.data(), h.data(), next, 2); },
                 "gx is null");
}

// A step bound once (FusedStep) gives the bits of the functions, step after
// step, in every form built: one sequence, a batch, the full step.
TEST(FusedStep, BoundStepsMatchTheFunctions) {
    const size_t I = 21;
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (size_t B : {1, 3})
            for (auto [k_w, k_a] : step_pairs(B))
                for (size_t H : {13, 130}) {
                    const bool lstm = arch == Arch::lstm, full = B == 1 && fused_full_step_built(k_w, k_a, 2);
                    const size_t G = lstm ? 4 : 3;
                    SCOPED_TRACE(std::string(lstm ? "lstm" : "gru") + " H=" + std::to_string(H) +
                                 " W" + std::to_string(k_w) + "A" + std::to_string(k_a) +
                                 " B=" + std::to_string(B));
                    auto matrix = [&](size_t cols, uint32_t seed) {
                        const std::vector<float> codes = uniform(size_t(k_w) * G * H * cols, seed, -1, 1);
                        const std::vector<float> alpha = uniform(G * H * size_t(k_w), seed + 1, 0.01f, 0.1f);
                        const std::vector<float> bias = uniform(G * H, seed + 2, -0.5f, 0.5f);
                        return BinaryMatrix::from_codes(codes.data(), alpha.data(), k_w, G * H, cols,
                                                        bias.data());
                    };
                    const BinaryMatrix W = matrix(H, 1), W_ih = matrix(I, 4);
                    const size_t sx = W.rows_padded() + 5;
                    const std::vector<float> h0 = uniform(B * H, 7, -1, 1), c0 = uniform(B * H, 8, -2, 2);
                    BinaryBatch q0;
                    q0.resize(k_a, H, B);
                    for (size_t b = 0; b < B; ++b) quantize_act(&h0[b * H], H, k_a, 2, q0, b);
                    // form 0: gx given; form 1: x_t given (the full step)
                    for (int form = 0; form < (full ? 2 : 1); ++form) {
                        std::vector<float> h_f = h0, c_f = c0, h_b = h0, c_b = c0;
                        BinaryBatch qf = q0, qb = q0, nf, nb;
                        const FusedStep step =
                            form == 0 ? (lstm ? FusedStep::lstm(W, k_a, B, sx, c_b.data(), h_b.data(), 2)
                                              : FusedStep::gru(W, k_a, B, sx, h_b.data(), 2))
                                      : (lstm ? FusedStep::lstm_full(W_ih, W, k_a, c_b.data(), h_b.data(), 2)
                                              : FusedStep::gru_full(W_ih, W, k_a, h_b.data(), 2));
                        ASSERT_FALSE(step.empty());
                        for (uint32_t t = 0; t < 3; ++t) {
                            const std::vector<float> in = form == 0 ? uniform(B * sx, 20 + t, -1, 1)
                                                                    : uniform(I, 30 + t, -1, 1);
                            if (form == 0 && lstm)
                                lstm_step(W, qf, in.data(), sx, c_f.data(), h_f.data(), nf, 2);
                            else if (form == 0)
                                gru_step(W, qf, in.data(), sx, h_f.data(), nf, 2);
                            else if (lstm)
                                lstm_full_step(W_ih, W, in.data(), qf, c_f.data(), h_f.data(), nf, 2);
                            else
                                gru_full_step(W_ih, W, in.data(), qf, h_f.data(), nf, 2);
                            step.run(qb, in.data(), nb);
                            std::swap(qf, nf);
                            std::swap(qb, nb);
                            EXPECT_EQ(h_b, h_f);
                            if (lstm) EXPECT_EQ(c_b, c_f);
                            EXPECT_EQ(qb.planes, qf.planes);
                            EXPECT_EQ(qb.beta, qf.beta);
                        }
                        // Not vacuous: the state moved.
                        EXPECT_GT(max_abs_diff(h_b, h0), 1e-2);
                    }
                }
}

TEST(FusedStep, BoundStepsCheckTheirInputs) {
    const size_t H = 20;
    const std::vector<float> codes = uniform(2 * 4 * H * H, 1, -1, 1);
    const std::vector<float> alpha = uniform(4 * H * 2, 2, 0.01f, 0.1f);
    const BinaryMatrix W = BinaryMatrix::from_codes(codes.data(), alpha.data(), 2, 4 * H, H),
                       W3 = BinaryMatrix::from_codes(codes.data(), alpha.data(), 2, 3 * H, H);
    std::vector<float> gx(W.rows_padded()), c(H), h(H);
    BinaryBatch hq, next;
    hq.resize(2, H, 1);
    auto expect_error = [](auto f, const std::string &what) {
        amq::testing::expect_throw_with<Error>(f, what);
    };
    // Binding makes the functions' checks.
    expect_error([&] { FusedStep::lstm(W, 2, 1, 4 * H - 1, c.data(), h.data(), 2); },
                 "lstm_step: gx has 79 floats");
    expect_error([&] { FusedStep::lstm(W, 2, 1, gx.size(), c.data(), c.data(), 2); },
                 "c and h must be different buffers");
    expect_error([&] { FusedStep::gru(W, 2, 1, gx.size(), h.data(), 2); }, "expected 3 x hidden");
    expect_error([&] { FusedStep::lstm(W, 2, 1, gx.size(), c.data(), h.data(), 1); },
                 "no fused kernel");
    expect_error([&] { FusedStep::lstm(W, 2, 0, gx.size(), c.data(), h.data(), 2); }, "batch 0");
    expect_error([&] { FusedStep::lstm(W, 7, 1, gx.size(), c.data(), h.data(), 2); },
                 "k_a = 7 is out of range");
    expect_error([&] { FusedStep::lstm_full(W3, W, 2, c.data(), h.data(), 2); },
                 "lstm_full_step: W_ih is 60x20");
    // Each step checks h_q against the binding, its input and h_q_next.
    const FusedStep step = FusedStep::lstm(W, 2, 1, gx.size(), c.data(), h.data(), 2);
    for (auto [k, n, b] : {std::tuple<int, size_t, size_t>{3, H, 1}, {2, H + 1, 1}, {2, H, 2}}) {
        BinaryBatch other;
        other.resize(k, n, b);
        expect_error([&] { step.run(other, gx.data(), next); },
                     "(the step was bound to k = 2, hidden 20 and batch 1)");
    }
    BinaryBatch short_scales = hq;
    short_scales.beta.resize(1);
    expect_error([&] { step.run(short_scales, gx.data(), next); }, "and 1 scales");
    expect_error([&] { step.run(hq, nullptr, next); }, "lstm_step: gx is null");
    expect_error([&] { step.run(hq, gx.data(), hq); }, "must not be h_q");
    std::vector<float> bad_gx = gx;
    bad_gx[3] = std::nanf("");
    expect_error([&] { step.run(hq, bad_gx.data(), next); }, "contains NaN or Inf");
    const FusedStep empty;
    EXPECT_TRUE(empty.empty());
    expect_error([&] { empty.run(hq, gx.data(), next); }, "the step is empty");
    FusedStep moved = FusedStep::gru(W3, 2, 1, gx.size(), h.data(), 2);
    const FusedStep taken = std::move(moved);
    EXPECT_TRUE(moved.empty());
    EXPECT_FALSE(taken.empty());
}

// ---- the runner ---------------------------------------------------------------

// run() and T step() calls of a session against the reference runner, on each
// StepKernels: the build's choice, the fused kernels wherever built, the separate ones.
void check_runner(Arch arch, int k_w, int k_a, size_t B) {
    const size_t I = 19, H = 70, T = 9;
    SCOPED_TRACE(std::string(arch == Arch::lstm ? "lstm" : "gru") + " W" + std::to_string(k_w) +
                 "A" + std::to_string(k_a) + " B=" + std::to_string(B));
    const ModelFile file = quantized(random_model(arch, 2, I, H, 11u + uint32_t(k_w)), k_w, k_a);
    const std::vector<float> x = uniform(T * B * I, 7, -1, 1);
    const ref::RnnOutput want = ref::run_model(file, x.data(), nullptr, T, B);
    const auto model = Model::from_file(file);
    const bool built = fused_step_built(k_w, k_a, 2, B);
    for (StepKernels kernels : {StepKernels::chosen, StepKernels::fused, StepKernels::separate}) {
        SCOPED_TRACE("StepKernels " + std::to_string(int(kernels)));
        Session by_run(model, B, kernels), by_step(model, B, kernels);
        // The build's choice, where it makes one.
        const char *cell = arch == Arch::lstm ? "lstm" : "gru";
        auto on = [&](StepCall call) {
            return kernels == StepKernels::fused ||
                   (kernels == StepKernels::chosen &&
                    step_choice(cell, k_w, k_a, H, B, call).fused);
        };
        for (int layer = 0; layer < 2; ++layer) {
            EXPECT_EQ(by_run.fused(StepCall::run, layer), built && on(StepCall::run));
            EXPECT_EQ(by_run.fused(StepCall::step, layer),
                      B == 1 && fused_full_step_built(k_w, k_a, 2) && on(StepCall::step));
        }
        std::vector<float> h_run(T * B * H), h_step;
        by_run.run(x.data(), T, h_run.data());
        for (size_t t = 0; t < T; ++t) {
            const float *h = by_step.step(&x[t * B * I]);
            h_step.insert(h_step.end(), h, h + B * H);
        }
        EXPECT_LE(max_abs_diff(h_run, want.h), 1e-4);
        EXPECT_LE(max_abs_diff(h_step, want.h), 1e-4);
    }
}

TEST(FusedStepRunner, EveryBitPairMatchesTheReferenceRunner) {
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (int k_w = 1; k_w <= 4; ++k_w)
            for (int k_a = 1; k_a <= 4; ++k_a) check_runner(arch, k_w, k_a, 1);
}

TEST(FusedStepRunner, BatchesMatchTheReferenceRunner) {
    for (Arch arch : {Arch::lstm, Arch::gru}) {
        check_runner(arch, 2, 2, 3);  // the batched fused steps
        check_runner(arch, 3, 3, 2);
        check_runner(arch, 1, 1, 8);
        check_runner(arch, 2, 3, 3);
        check_runner(arch, 3, 2, 3);  // none built: the separate kernels
    }
}

// ---- the build's choice between fused and separate kernels ---------------------

TEST(StepChoice, NearestEntryOfTheSameCellBitsCallAndBatchClass) {
    const StepChoiceEntry table[] = {
        {"lstm", 2, 2, 256, 1, "run", false, 2.0, 1.8},
        {"lstm", 2, 2, 1024, 1, "run", true, 15.0, 16.0},
        {"lstm", 2, 2, 1024, 8, "run", false, 60.0, 55.0},
        {"lstm", 2, 2, 256, 1, "step", true, 2.2, 2.5},
        {"gru", 2, 2, 256, 1, "run", true, 1.5, 1.6},
        {"lstm", 3, 3, 256, 1, "run", true, 3.0, 3.3},
        {nullptr, 0, 0, 0, 0, nullptr, true, 0, 0}};
    auto choose = [&](const char *cell, int kw, int ka, size_t H, size_t B, StepCall call) {
        return step_choice(table, cell, kw, ka, H, B, call);
    };
    // Exact and nearest (log2) hidden sizes: 400 is nearer 256 than 1024.
    EXPECT_FALSE(choose("lstm", 2, 2, 256, 1, StepCall::run).fused);
    EXPECT_EQ(choose("lstm", 2, 2, 256, 1, StepCall::run).entry, &table[0]);
    EXPECT_EQ(choose("lstm", 2, 2, 400, 1, StepCall::run).entry, &table[0]);
    EXPECT_EQ(choose("lstm", 2, 2, 600, 1, StepCall::run).entry, &table[1]);
    EXPECT_TRUE(choose("lstm", 2, 2, 4096, 1, StepCall::run).fused);
    EXPECT_FALSE(choose("lstm", 2, 2, 64, 1, StepCall::run).fused);
    // Batches above 1 take only the batched entries, and batch 1 only batch 1's.
    EXPECT_EQ(choose("lstm", 2, 2, 256, 2, StepCall::run).entry, &table[2]);
    EXPECT_FALSE(choose("lstm", 2, 2, 256, 16, StepCall::run).fused);
    // The call, the cell and the bits each select their own entries.
    EXPECT_EQ(choose("lstm", 2, 2, 1024, 1, StepCall::step).entry, &table[3]);
    EXPECT_EQ(choose("gru", 2, 2, 64, 1, StepCall::run).entry, &table[4]);
    EXPECT_EQ(choose("lstm", 3, 3, 64, 1, StepCall::run).entry, &table[5]);
    // No entry: the fused kernel, and no entry named.
    for (const StepChoice c : {choose("gru", 2, 2, 256, 1, StepCall::step),
                               choose("gru", 2, 2, 256, 4, StepCall::run),
                               choose("lstm", 1, 1, 256, 1, StepCall::run),
                               step_choice(nullptr, "lstm", 2, 2, 256, 1, StepCall::run)}) {
        EXPECT_TRUE(c.fused);
        EXPECT_EQ(c.entry, nullptr);
    }
}

// The build's table is the schedules file's "steps": every entry whose fused
// kernel is built is in it with the choice of the 3% rule, and the table holds
// nothing else.
TEST(StepChoice, TheBuildsTableIsItsSchedulesFile) {
    std::ifstream in(AMQ_BUILD_SCHEDULES);
    ASSERT_TRUE(in) << AMQ_BUILD_SCHEDULES;
    const nlohmann::json doc = nlohmann::json::parse(in);
    size_t expected = 0;
    for (const auto &e : doc.value("steps", nlohmann::json::array())) {
        const std::string cell = e["cell"], bits = e["bits"], call = e["call"];
        const int k_w = bits[1] - '0', k_a = bits[3] - '0';
        const size_t hidden = e["hidden"], batch = e["batch"];
        const bool built = call == "step" ? fused_full_step_built(k_w, k_a, 2)
                                          : fused_step_built(k_w, k_a, 2, batch);
        if (!built) continue;
        ++expected;
        SCOPED_TRACE(cell + " " + bits + " " + std::to_string(hidden) + " " +
                     std::to_string(batch) + " " + call);
        const StepChoice c = step_choice(cell.c_str(), k_w, k_a, hidden, batch,
                                         call == "run" ? StepCall::run : StepCall::step);
        ASSERT_NE(c.entry, nullptr);
        EXPECT_EQ(size_t(c.entry->hidden), hidden);
        EXPECT_EQ(size_t(c.entry->batch), batch);
        const double fused_us = e["fused_us"], separate_us = e["separate_us"];
        EXPECT_EQ(c.fused, !(separate_us < 0.97 * fused_us));
        EXPECT_NEAR(c.entry->fused_us, fused_us, 1e-3);
        EXPECT_NEAR(c.entry->separate_us, separate_us, 1e-3);
    }
    size_t linked = 0;
    for (const StepChoiceEntry *e = step_choices(); e->cell; ++e) ++linked;
    EXPECT_EQ(linked, expected);
}

// The session follows the build's table; AMQ_FUSED_STEP=0/1 overrides it.
TEST(StepChoice, SessionFollowsTheBuildsTableAndTheEnvironment) {
    const size_t I = 19, H = 70;
    for (Arch arch : {Arch::lstm, Arch::gru}) {
        const char *cell = arch == Arch::lstm ? "lstm" : "gru";
        const auto model = Model::from_file(quantized(random_model(arch, 1, I, H, 5u), 2, 2));
        const bool built = fused_step_built(2, 2, 2, 1);
        const StepChoice run = step_choice(cell, 2, 2, H, 1, StepCall::run),
                         step = step_choice(cell, 2, 2, H, 1, StepCall::step);
        EXPECT_EQ(Session(model).fused(StepCall::run), built && run.fused);
        EXPECT_EQ(Session(model).fused(StepCall::step),
                  fused_full_step_built(2, 2, 2) && step.fused);
        setenv("AMQ_FUSED_STEP", "0", 1);
        EXPECT_FALSE(Session(model).fused(StepCall::run));
        setenv("AMQ_FUSED_STEP", "1", 1);
        EXPECT_EQ(Session(model).fused(StepCall::run), built);
        // An explicit StepKernels is not overridden.
        EXPECT_FALSE(Session(model, 1, StepKernels::separate).fused(StepCall::run));
        setenv("AMQ_FUSED_STEP", "yes", 1);
        amq::testing::expect_throw_with<Error>([&] { Session s(model); },
                                               "AMQ_FUSED_STEP = 'yes' (expected 0");
        unsetenv("AMQ_FUSED_STEP");
        amq::testing::expect_throw_with<Error>(
            [&] { (void)Session(model).fused(StepCall::run, 1); }, "layer 1 out of range");
    }
}

}  // namespace
}  // namespace amq
