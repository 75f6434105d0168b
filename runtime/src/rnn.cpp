// The LSTM/GRU runner: see amq/rnn.h.
#include "amq/rnn.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace amq {
namespace {

[[noreturn]] void fail(const std::string &what) { throw Error("amq::Session: " + what); }

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string &path) {
    return from_file(load_model(path));
}

std::shared_ptr<const Model> Model::from_file(const ModelFile &f) {
    std::shared_ptr<Model> m(new Model());
    m->shape_ = f.shape;
    m->quantized_ = f.quantized();
    m->k_w_ = f.k_w;
    m->k_a_ = f.k_a;
    m->act_iters_ = f.act_method == "greedy" ? 0 : f.act_iters;
    if (m->quantized_ && (m->act_iters_ < 0 || m->act_iters_ > 3))
        throw Error("amq::Model: act_iters = " + std::to_string(f.act_iters) +
                    ", the activation kernels are built for 0..3");
    m->vocab_ = f.vocab;
    m->metadata_ = f.metadata;
    m->matrices_ = quantized_matrices(f);

    auto matrix = [&](const std::string &name, const std::string &bias_name) {
        Matrix mat;
        const auto [rows, cols] = matrix_dims(f.shape, name);
        mat.rows = rows;
        mat.cols = cols;
        auto b = f.floats.find(bias_name);
        const float *bias = b == f.floats.end() ? nullptr : b->second.data.data();
        if (auto q = f.quant.find(name); q != f.quant.end()) {
            mat.quantized = true;
            mat.binary = BinaryMatrix::from_planes(q->second.planes.data(), q->second.alpha.data(),
                                                   q->second.k, rows, cols, bias);
            const MatrixBits b = f.bits_of(name);
            mat.act = {b.k_a, b.act_method == "alternating" ? f.act_iters : 0,
                       b.act_method == "ternary"};
            if (mat.act.iters > 3)
                throw Error("amq::Model: " + name + ": act_iters = " +
                            std::to_string(f.act_iters) +
                            ", the activation kernels are built for 0..3");
        } else {
            mat.weights = f.floats.at(name).data;
            mat.bias = bias ? std::vector<float>(bias, bias + rows) : std::vector<float>(rows, 0);
        }
        return mat;
    };
    for (int l = 0; l < f.shape.layers; ++l) {
        const std::string sl = std::to_string(l);
        m->layers_.push_back({matrix("weight_ih_l" + sl, "bias_ih_l" + sl),
                              matrix("weight_hh_l" + sl, "bias_hh_l" + sl)});
    }
    if (f.shape.lm()) {
        if (auto q = f.quant.find("embedding.weight"); q != f.quant.end())
            m->embedding_q_ = q->second;
        else
            m->embedding_ = f.floats.at("embedding.weight").data;
        m->decoder_ = matrix(f.shape.tied ? "embedding.weight" : "decoder.weight", "decoder.bias");
    }
    return m;
}

size_t Model::weight_bytes() const {
    auto bytes = [](const Matrix &m) {
        return m.quantized ? m.binary.bytes() : (m.weights.size() + m.bias.size()) * sizeof(float);
    };
    size_t total = 0;
    for (const Layer &l : layers_) total += bytes(l.ih) + bytes(l.hh);
    if (shape_.lm()) {
        total += embedding_.size() * sizeof(float) + embedding_q_.planes.size() * 8 +
                 embedding_q_.alpha.size() * sizeof(float);
        if (!shape_.tied || decoder_.quantized != !embedding_q_.planes.empty())
            total += bytes(decoder_);
    }
    return total;
}

Session::Session(std::shared_ptr<const Model> model, size_t batch)
    : model_(std::move(model)), batch_(batch) {
    if (!model_) fail("model is null");
    if (batch_ == 0) fail("batch = 0, expected at least 1");
    const RnnShape &s = model_->shape_;
    H_ = s.hidden_size;
    G_ = size_t(s.gates());
    const size_t L = size_t(s.layers), B = batch_;
    input_.assign(B * s.input_size, 0.0f);
    h_.assign(L, std::vector<float>(B * H_, 0.0f));
    c_ = h_;
    size_t stride = 0;
    for (const auto &layer : model_->layers_)
        stride = std::max({stride, layer.ih.out_stride(), layer.hh.out_stride()});
    gx_.assign(B * stride, 0.0f);
    gh_.assign(B * stride, 0.0f);
    if (model_->quantized_) {
        hq_.resize(L);
        for (size_t l = 0; l < L; ++l) {
            const Model::Layer &layer = model_->layers_[l];
            ih_slot_.push_back(l == 0 ? xq_.slot(layer.ih.act, s.input_size, B)
                                      : hq_[l - 1].slot(layer.ih.act, H_, B));
            hh_slot_.push_back(hq_[l].slot(layer.hh.act, H_, B));
        }
        if (s.lm() && model_->decoder_.quantized)
            dec_slot_ = hq_.back().slot(model_->decoder_.act, H_, B);
    }
    if (s.lm()) {
        logits_.assign(B * s.vocab_size, 0.0f);
        logits_padded_.assign(B * model_->decoder_.out_stride(), 0.0f);
    }
    reset();
}

void Session::reset() {
    for (auto &h : h_) std::fill(h.begin(), h.end(), 0.0f);
    for (auto &c : c_) std::fill(c.begin(), c.end(), 0.0f);
    if (model_->quantized_)
        for (size_t l = 0; l < h_.size(); ++l) quantize_hidden(l);
}

size_t Session::QuantizedVector::slot(const Model::ActQuant &a, size_t n, size_t batch) {
    for (size_t i = 0; i < settings.size(); ++i)
        if (settings[i] == a) return i;
    settings.push_back(a);
    q.emplace_back().resize(a.k, n, batch);
    return settings.size() - 1;
}

void Session::quantize_into(const float *x, size_t n, QuantizedVector &v, size_t b) {
    for (size_t i = 0; i < v.settings.size(); ++i) {
        const Model::ActQuant &a = v.settings[i];
        quantize_act(x, n, a.k, a.iters, v.q[i], b, a.ternary);
    }
}

void Session::quantize_hidden(size_t l) {
    for (size_t b = 0; b < batch_; ++b) quantize_into(&h_[l][b * H_], H_, hq_[l], b);
}

// y [B][m.out_stride()] = m a + bias: binary on the quantized batch aq, or float
// on a [B][a_stride].
void Session::product(const Model::Matrix &m, const BinaryBatch &aq, const float *a,
                      size_t a_stride, float *y) {
    if (m.quantized) {
        bgemm(m.binary, aq, y, m.out_stride());
        return;
    }
    for (size_t b = 0; b < batch_; ++b)
        f32_gemv(m.weights.data(), m.rows, m.cols, a + b * a_stride, m.bias.data(),
                 y + b * m.out_stride());
}

// The fused cell of layer l on gx [B][gx_stride] and gh_ [B][gh_stride]: h_[l]
// (and c_[l]) updated in place.
void Session::cell_step(size_t l, const float *gx_data, size_t gx_stride, size_t gh_stride) {
    const size_t B = batch_, H = H_;
    const ConstFloatBatch gx{gx_data, B, G_ * H, gx_stride};
    const ConstFloatBatch gh{gh_.data(), B, G_ * H, gh_stride};
    const FloatBatch h{h_[l].data(), B, H, H};
    if (model_->shape_.arch == Arch::lstm) {
        const FloatBatch c{c_[l].data(), B, H, H};
        lstm_cell(gx, gh, {c.data, B, H, H}, h, c);
    } else {
        gru_cell(gx, gh, {h.data, B, H, H}, h);
    }
}

void Session::layers_step() {
    const size_t H = H_, I = model_->shape_.input_size;
    for (size_t l = 0; l < model_->layers_.size(); ++l) {
        const Model::Layer &layer = model_->layers_[l];
        const float *in = l == 0 ? input_.data() : h_[l - 1].data();
        // A float model has no hq_: an empty batch is passed and unused.
        static const BinaryBatch none;
        const bool q = !hq_.empty();
        const BinaryBatch &in_q = !q ? none : l == 0 ? xq_.q[ih_slot_[0]] : hq_[l - 1].q[ih_slot_[l]];
        product(layer.ih, in_q, in, l == 0 ? I : H, gx_.data());
        product(layer.hh, q ? hq_[l].q[hh_slot_[l]] : none, h_[l].data(), H, gh_.data());
        cell_step(l, gx_.data(), layer.ih.out_stride(), layer.hh.out_stride());
        if (model_->quantized_) quantize_hidden(l);
    }
}

const float *Session::step(const float *x) {
    const size_t I = model_->shape_.input_size;
    if (!x) fail("step: x is null");
    check_finite(x, batch_, I, "step: x");
    if (x != input_.data()) std::copy(x, x + batch_ * I, input_.begin());
    if (model_->quantized_)
        for (size_t b = 0; b < batch_; ++b) quantize_into(&input_[b * I], I, xq_, b);
    layers_step();
    return h_.back().data();
}

const float *Session::step_tokens(const int64_t *tokens) {
    const RnnShape &s = model_->shape_;
    if (!s.lm()) fail("step_tokens: the model has no embedding (not a language model)");
    if (!tokens) fail("step_tokens: tokens is null");
    const size_t E = s.input_size;
    for (size_t b = 0; b < batch_; ++b) {
        const int64_t t = tokens[b];
        if (t < 0 || uint64_t(t) >= s.vocab_size)
            fail("token " + std::to_string(t) + " (batch item " + std::to_string(b) +
                 ") is out of range, expected 0.." + std::to_string(s.vocab_size - 1));
        float *row = &input_[b * E];
        if (model_->embedding_.empty()) {
            for (size_t c = 0; c < E; ++c) row[c] = model_->embedding_q_.value(size_t(t), c);
        } else {
            const float *src = &model_->embedding_[size_t(t) * E];
            std::copy(src, src + E, row);
        }
    }
    step(input_.data());
    const Model::Matrix &dec = model_->decoder_;
    const size_t V = s.vocab_size, stride = dec.out_stride();
    static const BinaryBatch none;
    const BinaryBatch &hq = dec.quantized ? hq_.back().q[dec_slot_] : none;
    product(dec, hq, h_.back().data(), H_, logits_padded_.data());
    for (size_t b = 0; b < batch_; ++b)
        std::copy(&logits_padded_[b * stride], &logits_padded_[b * stride] + V, &logits_[b * V]);
    return h_.back().data();
}

const float *Session::logits() const {
    if (!model_->shape_.lm()) fail("logits: the model has no decoder (not a language model)");
    return logits_.data();
}

const float *Session::hidden(int layer) const {
    if (layer < 0 || size_t(layer) >= h_.size())
        fail("hidden: layer " + std::to_string(layer) + " out of range");
    return h_[size_t(layer)].data();
}

const float *Session::cell(int layer) const {
    if (model_->shape_.arch != Arch::lstm) fail("cell: a GRU has no cell state");
    if (layer < 0 || size_t(layer) >= c_.size())
        fail("cell: layer " + std::to_string(layer) + " out of range");
    return c_[size_t(layer)].data();
}

void Session::check_finite(const float *x, size_t count, size_t width, const char *what) const {
    for (size_t i = 0; i < count * width; ++i)
        if (!std::isfinite(x[i]))
            fail(std::string(what) + "[" + std::to_string(i / width) + "][" +
                 std::to_string(i % width) + "] is " + std::to_string(x[i]) +
                 ", expected a finite value");
}

void Session::run(const float *x, size_t T, float *h_out) {
    const size_t I = model_->shape_.input_size, BH = batch_ * H_;
    if (T > 0 && !x) fail("run: x is null");
    if (!model_->quantized_) {
        for (size_t t = 0; t < T; ++t) {
            const float *h = step(x + t * batch_ * I);
            if (h_out) std::copy(h, h + BH, h_out + t * BH);
        }
        return;
    }
    check_finite(x, T * batch_, I, "run: x");
    for (size_t t = 0; t < T; t += kRunChunk)
        run_chunk(x + t * batch_ * I, std::min(kRunChunk, T - t), h_out ? h_out + t * BH : nullptr);
}

// n steps of a quantized model, layer by layer: the input products of all n steps
// in one bgemm over n x B items, then the recurrence step by step.
void Session::run_chunk(const float *x, size_t n, float *h_out) {
    const size_t B = batch_, H = H_, I = model_->shape_.input_size, NB = n * B;
    const Model::ActQuant &a0 = model_->layers_[0].ih.act;
    seq_in_.resize(a0.k, I, NB);
    for (size_t i = 0; i < NB; ++i) quantize_act(x + i * I, I, a0.k, a0.iters, seq_in_, i, a0.ternary);
    for (size_t l = 0; l < model_->layers_.size(); ++l) {
        const Model::Layer &layer = model_->layers_[l];
        const size_t sx = layer.ih.out_stride(), sh = layer.hh.out_stride();
        gx_seq_.resize(std::max(gx_seq_.size(), NB * sx));  // grows once
        bgemm(layer.ih.binary, seq_in_, gx_seq_.data(), sx);
        const bool last = l + 1 == model_->layers_.size();
        // The next layer's input: h quantized for its weight_ih.
        const BinaryBatch &next = hq_[l].q[last ? hh_slot_[l] : ih_slot_[l + 1]];
        const size_t k = size_t(next.k), item_words = k * next.words();
        if (!last) seq_out_.resize(next.k, H, NB);
        for (size_t t = 0; t < n; ++t) {
            bgemm(layer.hh.binary, hq_[l].q[hh_slot_[l]], gh_.data(), sh);
            cell_step(l, gx_seq_.data() + t * B * sx, sx, sh);
            quantize_hidden(l);
            if (!last) {  // the next layer's input at step t
                std::copy(next.planes.begin(), next.planes.begin() + B * item_words,
                          seq_out_.planes.begin() + t * B * item_words);
                std::copy(next.beta.begin(), next.beta.begin() + B * k,
                          seq_out_.beta.begin() + t * B * k);
            } else if (h_out) {
                std::copy(h_[l].begin(), h_[l].end(), h_out + t * B * H);
            }
        }
        if (!last) std::swap(seq_in_, seq_out_);
    }
}

void Session::run_tokens(const int64_t *tokens, size_t T, float *h_out, float *logits_out) {
    const size_t BH = batch_ * H_, BV = batch_ * model_->shape_.vocab_size;
    for (size_t t = 0; t < T; ++t) {
        const float *h = step_tokens(tokens + t * batch_);
        if (h_out) std::copy(h, h + BH, h_out + t * BH);
        if (logits_out) std::copy(logits_.begin(), logits_.end(), logits_out + t * BV);
    }
}

}  // namespace amq
