// The oneDNN baseline computes the same LSTM/GRU as PyTorch (and amq): its f32
// forward, fed PyTorch-layout weights, matches a scalar double reference. Its
// plain GRU (the GRU's int8 speed baseline) matches the plain-GRU reference in
// f32 and stays near it in int8.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "onednn_rnn.h"

namespace {

using amq::bench::OnednnRnn;
using amq::bench::OnednnRnnConfig;
using amq::bench::TorchRnnLayer;

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// PyTorch nn.LSTM / nn.GRU (gates i,f,g,o / r,z,n), zero initial state, in double.
// cfg.plain_gru: the plain GRU of the same weights, n = tanh(W_in x + b_in +
// W_hn (r * h) + b_hn) instead of PyTorch's tanh(W_in x + b_in + r * (W_hn h + b_hn)).
// x [T][B][I]; returns the last layer's h [T][B][H].
std::vector<float> reference_rnn(const OnednnRnnConfig &cfg, const std::vector<TorchRnnLayer> &w,
                                 const std::vector<float> &x) {
    const bool lstm = cfg.arch == "lstm";
    const int G = lstm ? 4 : 3, H = cfg.hidden_size, T = cfg.steps, B = cfg.batch;
    std::vector<double> in(x.begin(), x.end());
    int I = cfg.input_size;
    for (int l = 0; l < cfg.layers; ++l) {
        const TorchRnnLayer &L = w[l];
        auto bias = [&](const std::vector<float> &b, int r) { return b.empty() ? 0.0 : b[r]; };
        std::vector<double> out(static_cast<size_t>(T) * B * H);
        for (int b = 0; b < B; ++b) {
            std::vector<double> h(H, 0.0), c(H, 0.0), gx(G * H), gh(G * H);
            for (int t = 0; t < T; ++t) {
                const double *xt = &in[(static_cast<size_t>(t) * B + b) * I];
                for (int r = 0; r < G * H; ++r) {
                    double sx = bias(L.b_ih, r), sh = bias(L.b_hh, r);
                    for (int i = 0; i < I; ++i) sx += double(L.w_ih[size_t(r) * I + i]) * xt[i];
                    for (int j = 0; j < H; ++j) sh += double(L.w_hh[size_t(r) * H + j]) * h[j];
                    gx[r] = sx;
                    gh[r] = sh;
                }
                std::vector<double> rh(H);  // plain GRU: W_hn (r * h) + b_hn
                if (!lstm && cfg.plain_gru) {
                    for (int j = 0; j < H; ++j) rh[j] = sigmoid(gx[j] + gh[j]) * h[j];
                    for (int o = 0; o < H; ++o) {
                        const int r = 2 * H + o;
                        double s = bias(L.b_hh, r);
                        for (int j = 0; j < H; ++j) s += double(L.w_hh[size_t(r) * H + j]) * rh[j];
                        gh[r] = s;
                    }
                }
                for (int o = 0; o < H; ++o) {
                    if (lstm) {
                        auto g = [&](int k) { return gx[k * H + o] + gh[k * H + o]; };
                        const double ig = sigmoid(g(0)), fg = sigmoid(g(1)), cg = std::tanh(g(2)),
                                     og = sigmoid(g(3));
                        c[o] = fg * c[o] + ig * cg;
                        h[o] = og * std::tanh(c[o]);
                    } else {
                        const double r = sigmoid(gx[o] + gh[o]), z = sigmoid(gx[H + o] + gh[H + o]);
                        const double n =
                            std::tanh(gx[2 * H + o] + (cfg.plain_gru ? 1.0 : r) * gh[2 * H + o]);
                        h[o] = (1.0 - z) * n + z * h[o];
                    }
                }
                for (int o = 0; o < H; ++o) out[(static_cast<size_t>(t) * B + b) * H + o] = h[o];
            }
        }
        in.swap(out);
        I = H;
    }
    return std::vector<float>(in.begin(), in.end());
}

std::vector<TorchRnnLayer> random_weights(const OnednnRnnConfig &cfg, float range, bool bias,
                                          unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-range, range);
    const size_t G = cfg.arch == "lstm" ? 4 : 3, H = cfg.hidden_size;
    std::vector<TorchRnnLayer> w(cfg.layers);  // plain GRU: the LBR GRU's shapes
    for (int l = 0; l < cfg.layers; ++l) {
        const size_t I = l == 0 ? cfg.input_size : H;
        auto fill = [&](std::vector<float> &v, size_t n) {
            v.resize(n);
            for (float &e : v) e = u(rng);
        };
        fill(w[l].w_ih, G * H * I);
        fill(w[l].w_hh, G * H * H);
        if (bias) {
            fill(w[l].b_ih, G * H);
            fill(w[l].b_hh, G * H);
        }
    }
    return w;
}

std::vector<float> random_input(const OnednnRnnConfig &cfg, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    std::vector<float> x(static_cast<size_t>(cfg.steps) * cfg.batch * cfg.input_size);
    for (float &e : x) e = u(rng);
    return x;
}

double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
    return m;
}

// arch "plain_gru": oneDNN's plain GRU (arch gru, plain_gru).
OnednnRnnConfig config(const std::string &arch, int steps, int layers = 1) {
    OnednnRnnConfig cfg;
    cfg.arch = arch == "plain_gru" ? "gru" : arch;
    cfg.plain_gru = arch == "plain_gru";
    cfg.input_size = 37;
    cfg.hidden_size = 129;
    cfg.batch = 3;
    cfg.steps = steps;
    cfg.layers = layers;
    cfg.threads = 2;
    return cfg;
}

struct Case {
    std::string arch;
    int steps, layers;
    bool bias;
};
void PrintTo(const Case &c, std::ostream *os) {
    *os << c.arch << " T=" << c.steps << " layers=" << c.layers << (c.bias ? "" : " no bias");
}

class OnednnMatchesReference : public ::testing::TestWithParam<Case> {};

TEST_P(OnednnMatchesReference, F32) {
    const Case &p = GetParam();
    const OnednnRnnConfig cfg = config(p.arch, p.steps, p.layers);
    const auto w = random_weights(cfg, 0.25f, p.bias, 11 + p.steps);
    const auto x = random_input(cfg, 5 + p.steps);
    const auto ref = reference_rnn(cfg, w, x);
    const auto got = amq::bench::onednn_rnn_forward_f32(cfg, w, x);
    ASSERT_EQ(got.size(), ref.size());
    const double err = max_abs_diff(got, ref);
    EXPECT_LE(err, 1e-4);
    std::printf("[ info ] max abs error vs f64 reference: %.3g\n", err);
    // The outputs move: a network stuck at 0 or +-1 would prove little.
    double spread = 0;
    for (float v : ref) spread = std::max(spread, std::fabs(double(v)));
    EXPECT_GT(spread, 0.3);
    EXPECT_LT(spread, 0.999);
}

INSTANTIATE_TEST_SUITE_P(Cells, OnednnMatchesReference,
                         ::testing::Values(Case{"lstm", 1, 1, true}, Case{"lstm", 23, 1, true},
                                           Case{"gru", 1, 1, true}, Case{"gru", 23, 1, true},
                                           Case{"lstm", 9, 2, false}, Case{"gru", 9, 2, true},
                                           Case{"plain_gru", 1, 1, true},
                                           Case{"plain_gru", 23, 1, true},
                                           Case{"plain_gru", 9, 2, false}),
                         [](const auto &info) {
                             return info.param.arch + "_T" + std::to_string(info.param.steps) +
                                    "_L" + std::to_string(info.param.layers) +
                                    (info.param.bias ? "" : "_nobias");
                         });

// int8 either runs and stays near the f32 network, or says plainly why it cannot.
TEST(OnednnRnn, Int8CloseToF32OrUnsupported) {
    for (const char *arch : {"lstm", "gru"}) {
        OnednnRnnConfig cfg = config(arch, 17);
        const auto w = random_weights(cfg, 0.1f, true, 3);
        auto x = random_input(cfg, 4);
        for (float &v : x) v *= 0.5f;  // int8 data range is [-1, 1]
        const auto ref = reference_rnn(cfg, w, x);
        cfg.int8 = true;
        OnednnRnn rnn(cfg, w);
        if (!rnn.ok()) {
            EXPECT_NE(rnn.reason().find("int8"), std::string::npos) << rnn.reason();
            const auto r = rnn.measure(3, 1);
            EXPECT_FALSE(r.ok);
            EXPECT_EQ(r.reason, rnn.reason());
            EXPECT_THROW(rnn.run(), std::runtime_error);
            std::printf("[ info ] %s int8: %s\n", arch, rnn.reason().c_str());
            continue;
        }
        rnn.set_input(x);
        rnn.run();
        const double err = max_abs_diff(rnn.output(), ref);
        EXPECT_LE(err, 0.05) << arch << " int8";
        std::printf("[ info ] %s int8 max abs error vs f64 reference: %.4f\n", arch, err);
    }
}

// The GRU's int8 speed baseline: oneDNN's plain GRU runs in int8 (it must: it is
// the figure `amq bench rnn --arch gru` reports) and stays near the f32 plain GRU
// of the same weights. Tolerance as for the int8 LSTM above: u8 activations are
// steps of 1/127 (h and x rounded by up to 0.004 each step), s8 weights steps of
// max|w|/127 per (gate, output) column; over 17 steps, with the z gate carrying
// h along, that stays well below 0.05 of h in [-1, 1], while a wrong gate order,
// bias or the LBR network differ by more (checked below).
TEST(OnednnRnn, Int8PlainGruCloseToF32PlainGru) {
    OnednnRnnConfig cfg = config("plain_gru", 17);
    const auto w = random_weights(cfg, 0.1f, true, 3);
    auto x = random_input(cfg, 4);
    for (float &v : x) v *= 0.5f;  // int8 data range is [-1, 1]
    const auto f32 = amq::bench::onednn_rnn_forward_f32(cfg, w, x);
    EXPECT_LE(max_abs_diff(f32, reference_rnn(cfg, w, x)), 1e-4);
    cfg.int8 = true;
    OnednnRnn rnn(cfg, w);
    ASSERT_TRUE(rnn.ok()) << rnn.reason();
    rnn.set_input(x);
    rnn.run();
    const auto q = rnn.output();
    ASSERT_EQ(q.size(), f32.size());
    const double err = max_abs_diff(q, f32);
    EXPECT_LE(err, 0.05) << "plain gru int8 vs f32";
    std::printf("[ info ] plain gru int8 max abs error vs f32 plain gru: %.4f (%s)\n", err,
                rnn.impl_info().c_str());
    // The test tells networks apart: the LBR GRU of the same weights is further
    // from the int8 output than the tolerance.
    OnednnRnnConfig lbr = cfg;
    lbr.int8 = lbr.plain_gru = false;
    const double lbr_err = max_abs_diff(q, reference_rnn(lbr, w, x));
    std::printf("[ info ] plain gru int8 max abs difference from the LBR GRU: %.4f\n", lbr_err);
    EXPECT_GT(lbr_err, 0.05);
    const auto r = rnn.measure(3, 1);
    ASSERT_TRUE(r.ok) << r.reason;
    EXPECT_GT(r.us_per_step, 0.0);
    EXPECT_FALSE(r.impl.empty());
}

TEST(OnednnRnn, MeasureGivesTime) {
    OnednnRnnConfig cfg = config("lstm", 20);
    cfg.threads = 1;
    const auto r = amq::bench::measure_onednn_rnn(cfg, 3, 2);
    ASSERT_TRUE(r.ok) << r.reason;
    EXPECT_GT(r.us_per_step, 0.0);
    EXPECT_FALSE(r.impl.empty());
}

TEST(OnednnRnn, BadArgumentsAreNamed) {
    OnednnRnnConfig cfg = config("rnn", 3);
    try {
        OnednnRnn rnn(cfg);
        FAIL() << "arch rnn accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("arch"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(amq::bench::measure_onednn_rnn(cfg, 3, 1).ok);

    cfg = config("lstm", 3);
    cfg.plain_gru = true;
    try {
        OnednnRnn rnn(cfg);
        FAIL() << "plain_gru with arch lstm accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("plain_gru"), std::string::npos) << e.what();
    }

    cfg = config("gru", 3);
    auto w = random_weights(cfg, 0.1f, true, 1);
    w[0].w_hh.pop_back();
    try {
        OnednnRnn rnn(cfg, w);
        FAIL() << "short weight_hh accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("weight_hh"), std::string::npos) << e.what();
    }

    w = random_weights(cfg, 0.1f, true, 1);
    OnednnRnn rnn(cfg, w);
    ASSERT_TRUE(rnn.ok()) << rnn.reason();
    EXPECT_THROW(rnn.set_input(std::vector<float>(5)), std::invalid_argument);
    EXPECT_THROW(amq::bench::onednn_rnn_forward_f32(config("gru", 3, 2), w, random_input(cfg, 1)),
                 std::invalid_argument);
}

}  // namespace
