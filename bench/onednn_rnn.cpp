#include "onednn_rnn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "amq/timing.h"
#include "dnnl.hpp"

namespace amq::bench {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// u8 = round(scale * x + shift): [-1, 1] maps onto [1, 255].
constexpr float kDataScale = 127.f, kDataShift = 128.f;
constexpr std::uint32_t kWeightSeed = 20240501u, kInputSeed = 7u;

bool is_lstm(const OnednnRnnConfig &cfg) { return cfg.arch == "lstm"; }
bool is_plain_gru(const OnednnRnnConfig &cfg) { return cfg.arch == "gru" && cfg.plain_gru; }
int torch_gates(const OnednnRnnConfig &cfg) { return is_lstm(cfg) ? 4 : 3; }
// Bias gates: LSTM i,f,c,o; LBR GRU u,r,o and b_hn; plain GRU u,r,o.
int bias_gates(const OnednnRnnConfig &cfg) { return is_plain_gru(cfg) ? 3 : 4; }
// oneDNN gate g holds PyTorch gate torch_gate(g): LSTM i,f,c,o = i,f,g,o; GRU u,r,o = z,r,n.
int torch_gate(const OnednnRnnConfig &cfg, int g) {
    static const int lstm[4] = {0, 1, 2, 3}, gru[3] = {1, 0, 2};
    return is_lstm(cfg) ? lstm[g] : gru[g];
}
int layer_input(const OnednnRnnConfig &cfg, int l) {
    return l == 0 ? cfg.input_size : cfg.hidden_size;
}

void validate_config(const OnednnRnnConfig &cfg) {
    if (cfg.arch != "lstm" && cfg.arch != "gru")
        throw std::invalid_argument("OnednnRnnConfig.arch: expected \"lstm\" or \"gru\", got \"" +
                                    cfg.arch + "\"");
    auto positive = [](const char *name, int v) {
        if (v <= 0)
            throw std::invalid_argument(std::string("OnednnRnnConfig.") + name +
                                        ": expected a positive value, got " + std::to_string(v));
    };
    positive("input_size", cfg.input_size);
    positive("hidden_size", cfg.hidden_size);
    positive("layers", cfg.layers);
    positive("batch", cfg.batch);
    positive("steps", cfg.steps);
    if (cfg.plain_gru && cfg.arch != "gru")
        throw std::invalid_argument("OnednnRnnConfig.plain_gru: only for arch \"gru\", got \"" +
                                    cfg.arch + "\"");
}

void check_size(const std::vector<float> &v, size_t expected, int layer, const char *tensor,
                bool may_be_empty) {
    if (v.size() == expected || (may_be_empty && v.empty())) return;
    std::ostringstream s;
    s << "onednn_rnn: layer " << layer << " " << tensor << ": expected " << expected << " floats"
      << (may_be_empty ? " (or none)" : "") << ", got " << v.size();
    throw std::invalid_argument(s.str());
}

void validate_weights(const OnednnRnnConfig &cfg, const std::vector<TorchRnnLayer> &w) {
    if (w.size() != static_cast<size_t>(cfg.layers))
        throw std::invalid_argument("onednn_rnn: expected weights for " +
                                    std::to_string(cfg.layers) + " layer(s), got " +
                                    std::to_string(w.size()));
    const size_t G = torch_gates(cfg), H = cfg.hidden_size;
    for (int l = 0; l < cfg.layers; ++l) {
        check_size(w[l].w_ih, G * H * layer_input(cfg, l), l, "weight_ih", false);
        check_size(w[l].w_hh, G * H * H, l, "weight_hh", false);
        check_size(w[l].b_ih, G * H, l, "bias_ih", true);
        check_size(w[l].b_hh, G * H, l, "bias_hh", true);
    }
}

// PyTorch [G*H, I] (row = gate*H + o) -> oneDNN ldigo [1][1][I][G][H], oneDNN gate order.
std::vector<float> to_ldigo(const OnednnRnnConfig &cfg, const std::vector<float> &w, int I) {
    const int G = torch_gates(cfg), H = cfg.hidden_size;
    std::vector<float> out(static_cast<size_t>(I) * G * H);
    for (int g = 0; g < G; ++g) {
        const int tg = torch_gate(cfg, g);
        for (int o = 0; o < H; ++o) {
            const float *row = w.data() + (static_cast<size_t>(tg) * H + o) * I;
            for (int i = 0; i < I; ++i) out[(static_cast<size_t>(i) * G + g) * H + o] = row[i];
        }
    }
    return out;
}

// LSTM: 4 biases b_ih + b_hh. LBR GRU: u, r as b_ih + b_hh, o as b_in, and the
// 4th bias b_hn, added to W_hn h before the reset gate multiplies it. Plain GRU:
// u, r, o as b_ih + b_hh (its o bias is outside the reset gate).
std::vector<float> to_ldgo_bias(const OnednnRnnConfig &cfg, const TorchRnnLayer &w) {
    const int H = cfg.hidden_size;
    std::vector<float> out(static_cast<size_t>(bias_gates(cfg)) * H, 0.f);
    auto at = [&](const std::vector<float> &b, int tg, int o) {
        return b.empty() ? 0.f : b[static_cast<size_t>(tg) * H + o];
    };
    for (int o = 0; o < H; ++o) {
        if (is_lstm(cfg)) {
            for (int g = 0; g < 4; ++g) out[g * H + o] = at(w.b_ih, g, o) + at(w.b_hh, g, o);
        } else if (is_plain_gru(cfg)) {
            for (int g = 0; g < 3; ++g) {
                const int tg = torch_gate(cfg, g);
                out[g * H + o] = at(w.b_ih, tg, o) + at(w.b_hh, tg, o);
            }
        } else {
            for (int g = 0; g < 2; ++g) {
                const int tg = torch_gate(cfg, g);
                out[g * H + o] = at(w.b_ih, tg, o) + at(w.b_hh, tg, o);
            }
            out[2 * H + o] = at(w.b_ih, 2, o);
            out[3 * H + o] = at(w.b_hh, 2, o);
        }
    }
    return out;
}

}  // namespace

const char *onednn_primitive_name(const OnednnRnnConfig &cfg) {
    return is_lstm(cfg) ? "lstm_forward" : is_plain_gru(cfg) ? "gru_forward" : "lbr_gru_forward";
}

std::string onednn_version() {
    const dnnl_version_t *v = dnnl::version();
    std::ostringstream s;
    s << v->major << "." << v->minor << "." << v->patch;
    return s.str();
}

std::vector<TorchRnnLayer> random_torch_rnn(const OnednnRnnConfig &cfg, std::uint32_t seed) {
    validate_config(cfg);
    std::mt19937 rng(seed);
    const float k = 1.f / std::sqrt(static_cast<float>(cfg.hidden_size));
    std::uniform_real_distribution<float> u(-k, k);
    const size_t G = torch_gates(cfg), H = cfg.hidden_size;
    std::vector<TorchRnnLayer> out(cfg.layers);
    for (int l = 0; l < cfg.layers; ++l) {
        auto fill = [&](std::vector<float> &v, size_t n) {
            v.resize(n);
            for (float &e : v) e = u(rng);
        };
        fill(out[l].w_ih, G * H * layer_input(cfg, l));
        fill(out[l].w_hh, G * H * H);
        fill(out[l].b_ih, G * H);
        fill(out[l].b_hh, G * H);
    }
    return out;
}

struct OnednnRnn::Impl {
    dnnl::engine eng{dnnl::engine::kind::cpu, 0};
    dnnl::stream strm{eng};
    std::vector<float> x;  // user input [T][B][I]
    memory x_mem;          // f32 tnc over x
    bool quantize_x = false;
    dnnl::reorder x_reorder;
    memory x_u8;
    std::vector<dnnl::primitive> prims;
    std::vector<std::unordered_map<int, memory>> args;
    std::vector<std::string> impls;
    memory last_dst;
};

OnednnRnn::OnednnRnn(const OnednnRnnConfig &cfg)
    : OnednnRnn(cfg, random_torch_rnn(cfg, kWeightSeed)) {
    if (!ok()) return;
    std::mt19937 rng(kInputSeed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> x(static_cast<size_t>(cfg.steps) * cfg.batch * cfg.input_size);
    for (float &e : x) e = u(rng);
    set_input(x);
}

OnednnRnn::OnednnRnn(const OnednnRnnConfig &cfg, const std::vector<TorchRnnLayer> &weights)
    : cfg_(cfg) {
    validate_config(cfg);
    validate_weights(cfg, weights);
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);

    auto im = std::make_unique<Impl>();
    const memory::dim T = cfg.steps, B = cfg.batch, H = cfg.hidden_size;
    const int G = torch_gates(cfg);
    const dt act_dt = cfg.int8 ? dt::u8 : dt::f32, w_dt = cfg.int8 ? dt::s8 : dt::f32;

    im->x.assign(static_cast<size_t>(T * B * cfg.input_size), 0.f);
    im->x_mem = memory({{T, B, cfg.input_size}, dt::f32, tag::tnc}, im->eng, im->x.data());
    memory src = im->x_mem;

    for (int l = 0; l < cfg.layers; ++l) {
        const memory::dim I = layer_input(cfg, l);
        const memory::desc src_md({T, B, I}, act_dt, tag::tnc), dst_md({T, B, H}, act_dt, tag::tnc);
        const memory::desc wl_md({1, 1, I, G, H}, w_dt, tag::any),
            wi_md({1, 1, H, G, H}, w_dt, tag::any);
        const memory::desc bias_md({1, 1, bias_gates(cfg), H}, dt::f32, tag::ldgo);
        const memory::desc user_wl_md({1, 1, I, G, H}, dt::f32, tag::ldigo),
            user_wi_md({1, 1, H, G, H}, dt::f32, tag::ldigo);

        std::vector<float> wl = to_ldigo(cfg, weights[l].w_ih, static_cast<int>(I));
        std::vector<float> wi = to_ldigo(cfg, weights[l].w_hh, cfg.hidden_size);
        std::vector<float> bias = to_ldgo_bias(cfg, weights[l]);

        dnnl::primitive_attr attr;
        if (cfg.int8) {
            // One scale per (gate, output) column, common to W_ih and W_hh.
            std::vector<float> scales(static_cast<size_t>(G) * H);
            for (int g = 0; g < G; ++g)
                for (int o = 0; o < H; ++o) {
                    float m = 0.f;
                    for (memory::dim i = 0; i < I; ++i)
                        m = std::max(m, std::fabs(wl[(i * G + g) * H + o]));
                    for (memory::dim i = 0; i < H; ++i)
                        m = std::max(m, std::fabs(wi[(i * G + g) * H + o]));
                    scales[static_cast<size_t>(g) * H + o] = m > 0.f ? 127.f / m : 1.f;
                }
            attr.set_rnn_data_qparams(kDataScale, kDataShift);
            attr.set_rnn_weights_qparams((1 << 3) | (1 << 4), scales);  // g and o of ldigo
        }

        const auto fwd = dnnl::prop_kind::forward_inference;
        const auto dir = dnnl::rnn_direction::unidirectional_left2right;
        dnnl::primitive prim;
        memory::desc pd_wl, pd_wi;
        std::string impl;
        try {
            if (is_lstm(cfg)) {
                dnnl::lstm_forward::desc d(fwd, dir, src_md, memory::desc(), memory::desc(), wl_md,
                                           wi_md, bias_md, dst_md, memory::desc(), memory::desc());
                dnnl::lstm_forward::primitive_desc pd(d, attr, im->eng);
                pd_wl = pd.weights_layer_desc();
                pd_wi = pd.weights_iter_desc();
                impl = pd.impl_info_str();
                prim = dnnl::lstm_forward(pd);
            } else if (is_plain_gru(cfg)) {
                dnnl::gru_forward::desc d(fwd, dir, src_md, memory::desc(), wl_md, wi_md, bias_md,
                                          dst_md, memory::desc());
                dnnl::gru_forward::primitive_desc pd(d, attr, im->eng);
                pd_wl = pd.weights_layer_desc();
                pd_wi = pd.weights_iter_desc();
                impl = pd.impl_info_str();
                prim = dnnl::gru_forward(pd);
            } else {
                dnnl::lbr_gru_forward::desc d(fwd, dir, src_md, memory::desc(), wl_md, wi_md,
                                              bias_md, dst_md, memory::desc());
                dnnl::lbr_gru_forward::primitive_desc pd(d, attr, im->eng);
                pd_wl = pd.weights_layer_desc();
                pd_wi = pd.weights_iter_desc();
                impl = pd.impl_info_str();
                prim = dnnl::lbr_gru_forward(pd);
            }
        } catch (const dnnl::error &e) {
            std::ostringstream s;
            s << "oneDNN " << onednn_version() << " cannot build " << onednn_primitive_name(cfg)
              << " " << (cfg.int8 ? "int8 (u8 data, s8 weights)" : "f32")
              << " forward inference for layer " << l << " (input " << I << ", hidden " << H
              << "): " << e.what()
              << (e.status == dnnl_unimplemented ? " [status: unimplemented on this CPU/build]"
                                                 : "");
            reason_ = s.str();
            return;
        }

        // Weights: user f32 ldigo -> the primitive's (packed, possibly s8) layout.
        auto reorder_into = [&](std::vector<float> &data, const memory::desc &user_md,
                                const memory::desc &md) {
            memory user(user_md, im->eng, data.data()), out(md, im->eng);
            dnnl::reorder(dnnl::reorder::primitive_desc(user, out, attr))
                .execute(im->strm, user, out);
            return out;
        };
        memory wl_mem = reorder_into(wl, user_wl_md, pd_wl);
        memory wi_mem = reorder_into(wi, user_wi_md, pd_wi);
        im->strm.wait();
        memory bias_mem(bias_md, im->eng);
        std::copy(bias.begin(), bias.end(), static_cast<float *>(bias_mem.get_data_handle()));

        if (l == 0 && cfg.int8) {
            im->quantize_x = true;
            im->x_u8 = memory(src_md, im->eng);
            im->x_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(im->x_mem, im->x_u8, attr));
            src = im->x_u8;
        }
        memory dst(dst_md, im->eng);
        im->prims.push_back(prim);
        im->args.push_back({{DNNL_ARG_SRC_LAYER, src},
                            {DNNL_ARG_WEIGHTS_LAYER, wl_mem},
                            {DNNL_ARG_WEIGHTS_ITER, wi_mem},
                            {DNNL_ARG_BIAS, bias_mem},
                            {DNNL_ARG_DST_LAYER, dst}});
        im->impls.push_back(impl);
        src = dst;
    }
    im->last_dst = src;
    impl_ = std::move(im);
}

OnednnRnn::~OnednnRnn() = default;

std::string OnednnRnn::impl_info() const {
    if (!impl_) return "";
    std::string s;
    for (size_t i = 0; i < impl_->impls.size(); ++i) s += (i ? "," : "") + impl_->impls[i];
    return s;
}

void OnednnRnn::set_input(const std::vector<float> &x) {
    if (!ok()) throw std::runtime_error("OnednnRnn::set_input: " + reason_);
    if (x.size() != impl_->x.size())
        throw std::invalid_argument(
            "OnednnRnn::set_input: x must be [T=" + std::to_string(cfg_.steps) +
            "][B=" + std::to_string(cfg_.batch) + "][I=" + std::to_string(cfg_.input_size) +
            "] = " + std::to_string(impl_->x.size()) + " floats, got " + std::to_string(x.size()));
    std::copy(x.begin(), x.end(), impl_->x.begin());  // x_mem points at impl_->x
}

void OnednnRnn::run() {
    if (!ok()) throw std::runtime_error("OnednnRnn::run: " + reason_);
    // The OpenMP thread count is per calling thread: set it where oneDNN runs.
    if (cfg_.threads > 0) omp_set_num_threads(cfg_.threads);
    if (impl_->quantize_x) impl_->x_reorder.execute(impl_->strm, impl_->x_mem, impl_->x_u8);
    for (size_t i = 0; i < impl_->prims.size(); ++i)
        impl_->prims[i].execute(impl_->strm, impl_->args[i]);
    impl_->strm.wait();
}

std::vector<float> OnednnRnn::output() const {
    if (!ok()) throw std::runtime_error("OnednnRnn::output: " + reason_);
    const size_t n = static_cast<size_t>(cfg_.steps) * cfg_.batch * cfg_.hidden_size;
    std::vector<float> h(n);
    if (cfg_.int8) {
        const auto *q = static_cast<const std::uint8_t *>(impl_->last_dst.get_data_handle());
        for (size_t i = 0; i < n; ++i) h[i] = (static_cast<float>(q[i]) - kDataShift) / kDataScale;
    } else {
        const auto *f = static_cast<const float *>(impl_->last_dst.get_data_handle());
        std::copy(f, f + n, h.begin());
    }
    return h;
}

OnednnRnnResult OnednnRnn::measure(int rounds, int iters) {
    OnednnRnnResult r;
    if (!ok()) {
        r.reason = reason_;
        return r;
    }
    if (rounds <= 0 || iters <= 0) {
        r.reason = "OnednnRnn::measure: rounds and iters must be positive, got rounds=" +
                   std::to_string(rounds) + " iters=" + std::to_string(iters);
        return r;
    }
    // amq's timing harness with one candidate and `iters` runs per sample.
    timing::Options o;
    o.round_ms = 0;
    o.min_calls = iters;
    o.min_rounds = o.max_rounds = rounds;
    o.stable = 0;
    o.warm_each_round = false;
    r.us_per_step =
        timing::time_interleaved({{[this] { run(); }, nullptr, nullptr, double(cfg_.steps)}}, o)[0]
            .median_us;
    r.ok = true;
    r.impl = impl_info();
    return r;
}

OnednnRnnResult measure_onednn_rnn(const OnednnRnnConfig &cfg, int rounds, int iters) {
    try {
        OnednnRnn rnn(cfg);
        return rnn.measure(rounds, iters);
    } catch (const std::exception &e) {
        OnednnRnnResult r;
        r.reason = e.what();
        return r;
    }
}

std::vector<float> onednn_rnn_forward_f32(const OnednnRnnConfig &cfg,
                                          const std::vector<TorchRnnLayer> &weights,
                                          const std::vector<float> &x) {
    OnednnRnnConfig c = cfg;
    c.int8 = false;
    OnednnRnn rnn(c, weights);
    if (!rnn.ok()) throw std::runtime_error(rnn.reason());
    rnn.set_input(x);
    rnn.run();
    return rnn.output();
}

}  // namespace amq::bench
