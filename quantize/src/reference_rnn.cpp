// The scalar reference runner: see amq/reference_rnn.h.
#include "amq/reference_rnn.h"

#include <stdexcept>
#include <string>

#include "amq/reference.h"
#include "amq/reference_cell.h"

namespace amq::ref {
namespace {

// y = W v + bias for the weight matrix `name` of the model (binary product of
// the online-quantized v when the matrix is quantized), rounded to float.
std::vector<float> product(const ModelFile &m, const std::string &name, const std::string &bias_name,
                           const std::vector<float> &v) {
    const float *bias = m.floats.count(bias_name) ? m.floats.at(bias_name).data.data() : nullptr;
    std::vector<double> y;
    if (m.quant.count(name)) {
        const QuantTensor &W = m.quant.at(name);
        const MatrixBits bits = m.bits_of(name);  // this matrix's activation quantizer
        const Quantized q = bits.act_method == "ternary" ? ternary(v.data(), v.size())
                            : bits.act_method == "greedy"
                                ? quantize_act(v.data(), v.size(), bits.k_a, 0)
                                : quantize_act(v.data(), v.size(), bits.k_a, m.act_iters);
        const std::vector<float> beta(q.alpha.begin(), q.alpha.end());
        const std::vector<uint64_t> A = pack_planes(q.codes.data(), q.k, 1, v.size());
        y = binary_gemv(W.planes.data(), W.alpha.data(), W.k, W.rows, A.data(), beta.data(), q.k,
                        v.size(), bias);
    } else {
        const FloatTensor &W = m.floats.at(name);
        const size_t rows = size_t(W.shape[0]), cols = size_t(W.shape[1]);
        if (cols != v.size()) throw std::invalid_argument("ref::run_model: " + name + " width");
        y = float_gemv(W.data.data(), rows, cols, v.data(), bias);
    }
    return std::vector<float>(y.begin(), y.end());
}

std::vector<float> embedding_row(const ModelFile &m, int64_t token) {
    const size_t E = m.shape.input_size;
    std::vector<float> row(E);
    if (m.quant.count("embedding.weight")) {
        const QuantTensor &q = m.quant.at("embedding.weight");
        for (size_t c = 0; c < E; ++c) row[c] = q.value(size_t(token), c);
    } else {
        const float *src = m.floats.at("embedding.weight").data.data() + size_t(token) * E;
        row.assign(src, src + E);
    }
    return row;
}

}  // namespace

RnnOutput run_model(const ModelFile &m, const float *x, const int64_t *tokens, size_t T, size_t B,
                    const RnnOptions &o) {
    const RnnShape &s = m.shape;
    if ((x == nullptr) == (tokens == nullptr))
        throw std::invalid_argument("ref::run_model: give exactly one of x and tokens");
    if (tokens && !s.lm()) throw std::invalid_argument("ref::run_model: tokens need an LM");
    const size_t H = s.hidden_size, Hs = s.h_size(), D = size_t(s.directions()),
                 LD = size_t(s.layers) * D, I = s.input_size;
    const bool lstm = s.arch == Arch::lstm;
    // The layer input of every step and item: [T * B] vectors.
    std::vector<std::vector<float>> in(T * B);
    for (size_t i = 0; i < T * B; ++i) {
        if (tokens) {
            if (tokens[i] < 0 || size_t(tokens[i]) >= s.vocab_size)
                throw std::invalid_argument("ref::run_model: token out of range");
            in[i] = embedding_row(m, tokens[i]);
        } else {
            in[i].assign(x + i * I, x + (i + 1) * I);
        }
    }
    RnnOutput out;
    out.h_n.assign(LD * B * Hs, 0.0f);
    if (lstm) out.c_n.assign(LD * B * H, 0.0f);
    std::vector<double> hd(H), cd(H);
    for (int l = 0; l < s.layers; ++l) {
        std::vector<std::vector<float>> next(T * B, std::vector<float>(D * Hs, 0.0f));
        for (size_t d = 0; d < D; ++d) {
            const size_t ld = size_t(l) * D + d;
            auto name = [&](const char *base) { return layer_tensor_name(base, l, int(d)); };
            for (size_t b = 0; b < B; ++b) {
                const size_t len = o.lengths ? size_t(o.lengths[b]) : T;
                if (len > T) throw std::invalid_argument("ref::run_model: length");
                std::vector<float> h(Hs, 0.0f), c(H, 0.0f);
                if (o.h0) h.assign(o.h0 + (ld * B + b) * Hs, o.h0 + (ld * B + b + 1) * Hs);
                if (o.c0 && lstm) c.assign(o.c0 + (ld * B + b) * H, o.c0 + (ld * B + b + 1) * H);
                for (size_t step = 0; step < len; ++step) {
                    const size_t t = d ? len - 1 - step : step;
                    const std::vector<float> gx = product(m, name("weight_ih"), name("bias_ih"),
                                                          in[t * B + b]);
                    const std::vector<float> gh = product(m, name("weight_hh"), name("bias_hh"), h);
                    if (lstm) {
                        lstm_cell(gx.data(), gh.data(), c.data(), H, hd.data(), cd.data());
                        for (size_t e = 0; e < H; ++e) c[e] = float(cd[e]);
                    } else {
                        gru_cell(gx.data(), gh.data(), h.data(), H, hd.data());
                    }
                    std::vector<float> cell_h(hd.begin(), hd.end());
                    h = s.proj_size ? product(m, name("weight_hr"), "", cell_h) : cell_h;
                    std::copy(h.begin(), h.end(), next[t * B + b].begin() + long(d * Hs));
                }
                std::copy(h.begin(), h.end(), out.h_n.begin() + long((ld * B + b) * Hs));
                if (lstm) std::copy(c.begin(), c.end(), out.c_n.begin() + long((ld * B + b) * H));
            }
        }
        in = std::move(next);
    }
    out.h.reserve(T * B * s.output_size());
    for (const std::vector<float> &v : in) out.h.insert(out.h.end(), v.begin(), v.end());
    if (s.lm()) {
        const std::string dec = s.tied ? "embedding.weight" : "decoder.weight";
        for (const std::vector<float> &v : in) {
            const std::vector<float> logits = product(m, dec, "decoder.bias", v);
            out.logits.insert(out.logits.end(), logits.begin(), logits.end());
        }
    }
    return out;
}

}  // namespace amq::ref
