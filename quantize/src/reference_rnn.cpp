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
                                ? greedy(v.data(), v.size(), bits.k_a)
                                : alternating(v.data(), v.size(), bits.k_a, m.act_iters);
        const std::vector<float> beta(q.alpha.begin(), q.alpha.end());
        const std::vector<uint64_t> A = pack_planes(q.codes.data(), q.k, 1, v.size());
        y = binary_gemv(W.planes.data(), W.alpha.data(), W.k, W.rows, A.data(), beta.data(), q.k,
                        v.size(), bias);
    } else {
        const FloatTensor &W = m.floats.at(name);
        const size_t rows = size_t(W.shape[0]), cols = size_t(W.shape[1]);
        if (cols != v.size()) throw std::invalid_argument("ref::run_model: " + name + " width");
        y.assign(rows, 0.0);
        for (size_t r = 0; r < rows; ++r) {
            double s = bias ? double(bias[r]) : 0.0;
            for (size_t c = 0; c < cols; ++c) s += double(W.data[r * cols + c]) * double(v[c]);
            y[r] = s;
        }
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

RnnOutput run_model(const ModelFile &m, const float *x, const int64_t *tokens, size_t T, size_t B) {
    const RnnShape &s = m.shape;
    if ((x == nullptr) == (tokens == nullptr))
        throw std::invalid_argument("ref::run_model: give exactly one of x and tokens");
    if (tokens && !s.lm()) throw std::invalid_argument("ref::run_model: tokens need an LM");
    const size_t H = s.hidden_size, L = size_t(s.layers), I = s.input_size;
    std::vector<std::vector<float>> h(L * B, std::vector<float>(H, 0.0f)), c = h;
    RnnOutput out;
    out.h.reserve(T * B * H);
    std::vector<double> hd(H), cd(H);
    for (size_t t = 0; t < T; ++t)
        for (size_t b = 0; b < B; ++b) {
            std::vector<float> v;
            if (tokens) {
                const int64_t tok = tokens[t * B + b];
                if (tok < 0 || size_t(tok) >= s.vocab_size)
                    throw std::invalid_argument("ref::run_model: token out of range");
                v = embedding_row(m, tok);
            } else {
                v.assign(x + (t * B + b) * I, x + (t * B + b + 1) * I);
            }
            for (size_t l = 0; l < L; ++l) {
                const std::string sl = std::to_string(l);
                std::vector<float> &hl = h[l * B + b], &cl = c[l * B + b];
                const std::vector<float> gx = product(m, "weight_ih_l" + sl, "bias_ih_l" + sl, v);
                const std::vector<float> gh = product(m, "weight_hh_l" + sl, "bias_hh_l" + sl, hl);
                if (s.arch == Arch::lstm) {
                    lstm_cell(gx.data(), gh.data(), cl.data(), H, hd.data(), cd.data());
                    for (size_t e = 0; e < H; ++e) cl[e] = float(cd[e]);
                } else {
                    gru_cell(gx.data(), gh.data(), hl.data(), H, hd.data());
                }
                for (size_t e = 0; e < H; ++e) hl[e] = float(hd[e]);
                v = hl;
            }
            out.h.insert(out.h.end(), v.begin(), v.end());
            if (s.lm()) {
                const std::string dec = s.tied ? "embedding.weight" : "decoder.weight";
                const std::vector<float> logits = product(m, dec, "decoder.bias", v);
                out.logits.insert(out.logits.end(), logits.begin(), logits.end());
            }
        }
    return out;
}

}  // namespace amq::ref
