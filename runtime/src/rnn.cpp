// The LSTM/GRU runner: see amq/rnn.h.
#include "amq/rnn.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
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
            const MatrixBits b = f.bits_of(name);  // matrix_bits, else the model's
            mat.act = {b.k_a, b.act_method == "alternating" ? f.act_iters : 0,
                       b.act_method == "ternary"};
            if (mat.act.iters > 3)
                throw Error("amq::Model: " + name + ": act_iters = " +
                            std::to_string(f.act_iters) +
                            ", the activation kernels are built for 0..3");
        } else {
            mat.floats = FloatMatrix::from_rows(f.floats.at(name).data.data(), rows, cols, bias);
        }
        return mat;
    };
    const RnnShape &shape = f.shape;
    for (int l = 0; l < shape.layers; ++l)
        for (int d = 0; d < shape.directions(); ++d) {
            Direction dir{matrix(layer_tensor_name("weight_ih", l, d),
                                 layer_tensor_name("bias_ih", l, d)),
                          matrix(layer_tensor_name("weight_hh", l, d),
                                 layer_tensor_name("bias_hh", l, d)),
                          {}};
            if (shape.proj_size) dir.hr = matrix(layer_tensor_name("weight_hr", l, d), "");
            m->dirs_.push_back(std::move(dir));
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
        return m.quantized ? m.binary.bytes() : m.floats.bytes();
    };
    size_t total = 0;
    for (const Direction &d : dirs_)
        total += bytes(d.ih) + bytes(d.hh) + (d.hr.rows ? bytes(d.hr) : 0);
    if (shape_.lm()) {
        total += embedding_.size() * sizeof(float) + embedding_q_.planes.size() * 8 +
                 embedding_q_.alpha.size() * sizeof(float);
        if (!shape_.tied || decoder_.quantized != !embedding_q_.planes.empty())
            total += bytes(decoder_);
    }
    return total;
}

Session::Session(std::shared_ptr<const Model> model, size_t batch, StepKernels kernels)
    : model_(std::move(model)), batch_(batch) {
    if (!model_) fail("model is null");
    if (batch_ == 0) fail("batch = 0, expected at least 1");
    const RnnShape &s = model_->shape_;
    H_ = s.hidden_size;
    G_ = size_t(s.gates());
    Hs_ = s.h_size();
    D_ = size_t(s.directions());
    const size_t LD = size_t(s.layers) * D_, B = batch_, I = s.input_size;
    input_.assign(B * I, 0.0f);
    h_.assign(LD, std::vector<float>(B * Hs_, 0.0f));
    c_.assign(LD, std::vector<float>(B * H_, 0.0f));
    size_t stride = 0, proj_stride = 0;
    for (const auto &dir : model_->dirs_) {
        stride = std::max({stride, dir.ih.out_stride(), dir.hh.out_stride()});
        if (dir.hr.rows) proj_stride = std::max(proj_stride, dir.hr.out_stride());
    }
    gx_seq_.assign(B * stride, 0.0f);
    gh_.assign(B * stride, 0.0f);
    if (s.proj_size) {
        m_.assign(B * H_, 0.0f);
        proj_.assign(B * proj_stride, 0.0f);
    }
    if (s.layers > 1) {
        layer_out_.assign(B * s.output_size(), 0.0f);
        layer_in_ = layer_out_;
    }
    saved_h_.assign(B * Hs_, 0.0f);
    saved_c_.assign(B * H_, 0.0f);
    if (model_->quantized_) {
        // Both hold a layer's inputs in turn (run_block swaps them): sized for
        // the widest (and most planes) so that steps allocate nothing.
        int k = 1;
        for (const auto &dir : model_->dirs_) k = std::max(k, dir.ih.act.k);
        seq_in_.resize(k, std::max(I, s.output_size()), B);
        seq_out_.resize(k, std::max(I, s.output_size()), B);
        hq_.resize(LD);
        for (size_t ld = 0; ld < LD; ++ld) hq_[ld].resize(model_->dirs_[ld].hh.act.k, Hs_, B);
        if (s.proj_size) {  // sized for the most planes: cell_step resizes it per direction
            int kp = 1;
            for (const auto &dir : model_->dirs_) kp = std::max(kp, dir.hr.act.k);
            mq_.resize(kp, H_, B);
        }
        if (s.lm() && model_->decoder_.quantized)
            dq_.resize(model_->decoder_.act.k, Hs_, B);
    }
    // The fused step kernels where one was built for the direction and the batch
    // (no projection), and chosen (StepKernels): bound once to their weights and
    // this session's state (an empty FusedStep: the separate kernels).
    steps_.resize(LD);
    full_steps_.resize(LD);
    if (const char *env = std::getenv("AMQ_FUSED_STEP"); env && kernels == StepKernels::chosen) {
        const std::string v = env;
        if (v == "0") kernels = StepKernels::separate;
        else if (v == "1") kernels = StepKernels::fused;
        else if (!v.empty())
            fail("AMQ_FUSED_STEP = '" + v + "' (expected 0: separate kernels, 1: fused wherever "
                 "built, or unset: the build's choice)");
    }
    const char *cell = s.arch == Arch::lstm ? "lstm" : "gru";
    auto chosen = [&](const Model::Matrix &hh, StepCall call) {
        return kernels == StepKernels::fused ||
               step_choice(cell, hh.binary.k_w(), hh.act.k, H_, B, call).fused;
    };
    const bool lstm = s.arch == Arch::lstm;
    if (model_->quantized_ && s.proj_size == 0 && kernels != StepKernels::separate)
        for (size_t ld = 0; ld < LD; ++ld) {
            const Model::Matrix &hh = model_->dirs_[ld].hh;
            // Its planes of h_t are the recurrent product's input at the next step
            // (hh's own activation quantizer), and it reads the common weight layout
            // (not that of a per-problem variant).
            const bool fits = hh.quantized && !hh.act.ternary &&
                              hh.binary.layout() == kernel_layout() &&
                              fused_step_fits(hh.binary) &&
                              fused_step_built(hh.binary.k_w(), hh.act.k, hh.act.iters, B);
            const int k = hh.act.k, iters = hh.act.iters;
            float *c = c_[ld].data(), *h = h_[ld].data();
            const size_t sx = model_->dirs_[ld].ih.out_stride();  // gx's item stride
            if (fits && chosen(hh, StepCall::run))
                steps_[ld] = lstm ? FusedStep::lstm(hh.binary, k, B, sx, c, h, iters)
                                  : FusedStep::gru(hh.binary, k, B, sx, h, iters);
            // The full step (step() of one sequence) also quantizes the input as
            // h and multiplies it with W_ih in the kernel: the same quantizer and
            // k_w for both.
            const Model::Matrix &ih = model_->dirs_[ld].ih;
            if (fits && B == 1 && ih.quantized && ih.act == hh.act &&
                ih.binary.k_w() == hh.binary.k_w() && ih.binary.layout() == kernel_layout() &&
                fused_step_fits(ih.binary) &&
                fused_full_step_built(hh.binary.k_w(), hh.act.k, hh.act.iters) &&
                chosen(hh, StepCall::step))
                full_steps_[ld] = lstm ? FusedStep::lstm_full(ih.binary, hh.binary, k, c, h, iters)
                                       : FusedStep::gru_full(ih.binary, hh.binary, k, h, iters);
        }
    if (s.lm()) {
        logits_.assign(B * s.vocab_size, 0.0f);
        logits_padded_.assign(B * model_->decoder_.out_stride(), 0.0f);
    }
    reset();
}

void Session::reset() { set_state(nullptr, nullptr); }

size_t Session::h_state_size() const { return h_.size() * batch_ * Hs_; }

size_t Session::c_state_size() const {
    return model_->shape_.arch == Arch::lstm ? c_.size() * batch_ * H_ : 0;
}

void Session::set_state(const float *h0, const float *c0) {
    if (c0 && model_->shape_.arch != Arch::lstm)
        fail("set_state: c0 given for a GRU (it has no cell state)");
    const size_t nh = batch_ * Hs_, nc = batch_ * H_;
    for (size_t ld = 0; ld < h_.size(); ++ld) {  // check all before changing any
        if (h0) check_finite(h0 + ld * nh, batch_, Hs_, "set_state: h0");
        if (c0) check_finite(c0 + ld * nc, batch_, H_, "set_state: c0");
    }
    for (size_t ld = 0; ld < h_.size(); ++ld) {
        if (h0)
            std::copy(h0 + ld * nh, h0 + (ld + 1) * nh, h_[ld].begin());
        else
            std::fill(h_[ld].begin(), h_[ld].end(), 0.0f);
        if (c0)
            std::copy(c0 + ld * nc, c0 + (ld + 1) * nc, c_[ld].begin());
        else
            std::fill(c_[ld].begin(), c_[ld].end(), 0.0f);
        if (model_->quantized_) quantize_hidden(ld);
    }
}

void Session::get_state(float *h_n, float *c_n) const {
    if (c_n && model_->shape_.arch != Arch::lstm)
        fail("get_state: c_n given for a GRU (it has no cell state)");
    for (size_t ld = 0; ld < h_.size(); ++ld) {
        if (h_n) std::copy(h_[ld].begin(), h_[ld].end(), h_n + ld * batch_ * Hs_);
        if (c_n) std::copy(c_[ld].begin(), c_[ld].end(), c_n + ld * batch_ * H_);
    }
}

void Session::quantize_hidden(size_t ld) {
    const Model::ActQuant &a = model_->dirs_[ld].hh.act;  // for the recurrent product
    quantize_act_batch(h_[ld].data(), Hs_, Hs_, batch_, a.k, a.iters, hq_[ld], 0, a.ternary);
}

bool Session::fused_step(size_t ld, const float *gx) {
    if (steps_[ld].empty()) return false;
    steps_[ld].run(hq_[ld], gx, hq_next_);
    std::swap(hq_[ld], hq_next_);
    return true;
}

void Session::full_step(size_t ld, const float *x) {
    full_steps_[ld].run(hq_[ld], x, hq_next_);
    std::swap(hq_[ld], hq_next_);
}

// y [items][m.out_stride()] = m a + bias: binary on the quantized batch aq (of
// `items` items), or float on a [items][a_stride].
void Session::product(const Model::Matrix &m, const BinaryBatch &aq, const float *a,
                      size_t a_stride, float *y, size_t items) {
    if (m.quantized) {
        bgemm(m.binary, aq, y, m.out_stride());
        return;
    }
    for (size_t i = 0; i < items; ++i)
        f32_gemv(m.floats, a + i * a_stride, m.cols, y + i * m.out_stride());
}

void Session::cell_step(size_t ld, const float *gx_data, size_t gx_stride, size_t gh_stride) {
    const size_t B = batch_, H = H_;
    const ConstFloatBatch gx{gx_data, B, G_ * H, gx_stride};
    const ConstFloatBatch gh{gh_.data(), B, G_ * H, gh_stride};
    if (model_->shape_.arch == Arch::gru) {
        const FloatBatch h{h_[ld].data(), B, H, H};
        gru_cell(gx, gh, {h.data, B, H, H}, h);
        return;
    }
    const FloatBatch c{c_[ld].data(), B, H, H};
    const Model::Matrix &hr = model_->dirs_[ld].hr;
    if (!hr.rows) {
        lstm_cell(gx, gh, {c.data, B, H, H}, {h_[ld].data(), B, H, H}, c);
        return;
    }
    // Projected: h = W_hr (o * tanh(c)), the product on m_ (quantized online).
    lstm_cell(gx, gh, {c.data, B, H, H}, {m_.data(), B, H, H}, c);
    if (model_->quantized_) {
        const Model::ActQuant &a = hr.act;
        mq_.resize(a.k, H, B);  // the directions' projections may differ in k (no growth)
        quantize_act_batch(m_.data(), H, H, B, a.k, a.iters, mq_, 0, a.ternary);
    }
    product(hr, mq_, m_.data(), H, proj_.data(), B);
    for (size_t b = 0; b < B; ++b)
        std::copy(&proj_[b * hr.out_stride()], &proj_[b * hr.out_stride()] + Hs_,
                  &h_[ld][b * Hs_]);
}

void Session::run_direction(size_t l, size_t d, const float *in, size_t in_width,
                            const BinaryBatch *in_q, size_t t0, size_t n, float *out,
                            const int64_t *lengths, BinaryBatch *collect) {
    const size_t ld = l * D_ + d, B = batch_, Hs = Hs_, H = H_;
    const size_t OW = D_ * Hs;
    const Model::Direction &dir = model_->dirs_[ld];
    const size_t sx = dir.ih.out_stride(), sh = dir.hh.out_stride();
    const bool quantized = model_->quantized_, reverse = d == 1;
    const bool lstm = model_->shape_.arch == Arch::lstm;
    const Model::ActQuant &a = dir.ih.act;  // the layer input, for weight_ih
    const size_t chunk = run_chunk(), chunks = (n + chunk - 1) / chunk;
    if (in_q && chunks != 1) fail("internal: quantized inputs of more than one chunk");
    const BinaryBatch &hq = quantized ? hq_[ld] : seq_in_;  // seq_in_: unused by a float model
    std::vector<float> &h = h_[ld], &c = c_[ld];
    for (size_t j = 0; j < chunks; ++j) {
        // The reverse direction takes the chunks, and their steps, from the end.
        const size_t c0 = (reverse ? chunks - 1 - j : j) * chunk;
        const size_t cn = std::min(chunk, n - c0), NB = cn * B;
        const float *cin = in + c0 * B * in_width;
        // One step of one sequence from its float input (step()): the full step
        // kernel, where one was chosen, takes x_t itself.
        const bool full = cn == 1 && !in_q && !lengths && !full_steps_[ld].empty();
        if (quantized && !in_q && !full) {  // the chunk's NB input vectors in one call
            seq_in_.resize(a.k, in_width, NB);
            quantize_act_batch(cin, in_width, in_width, NB, a.k, a.iters, seq_in_, 0, a.ternary);
        }
        if (gx_seq_.size() < NB * sx) gx_seq_.resize(NB * sx);  // grows once
        if (!full) product(dir.ih, in_q ? *in_q : seq_in_, cin, in_width, gx_seq_.data(), NB);
        for (size_t s = 0; s < cn; ++s) {
            const size_t ts = reverse ? cn - 1 - s : s, t = c0 + ts;
            // Sequences whose length ends before step t0 + t keep their state.
            auto done = [&](size_t b) { return lengths && uint64_t(t0 + t) >= uint64_t(lengths[b]); };
            bool any_done = false;
            for (size_t b = 0; b < B; ++b)
                if (done(b)) {
                    any_done = true;
                    std::copy(&h[b * Hs], &h[b * Hs] + Hs, &saved_h_[b * Hs]);
                    if (lstm) std::copy(&c[b * H], &c[b * H] + H, &saved_c_[b * H]);
                }
            // One fused kernel (its planes of h_t swapped into hq_[ld]), or apart.
            if (full) {
                full_step(ld, cin);
            } else if (any_done || !fused_step(ld, gx_seq_.data() + ts * B * sx)) {
                product(dir.hh, hq, h.data(), Hs, gh_.data(), B);
                cell_step(ld, gx_seq_.data() + ts * B * sx, sx, sh);
                if (any_done)
                    for (size_t b = 0; b < B; ++b)
                        if (done(b)) {
                            std::copy(&saved_h_[b * Hs], &saved_h_[b * Hs] + Hs, &h[b * Hs]);
                            if (lstm)
                                std::copy(&saved_c_[b * H], &saved_c_[b * H] + H, &c[b * H]);
                        }
                if (quantized) quantize_hidden(ld);
            }
            if (collect) {  // the next layer's quantized input at step t
                const size_t k = size_t(hq.k), item_words = k * hq.words();
                std::copy(hq.planes.begin(), hq.planes.begin() + B * item_words,
                          collect->planes.begin() + t * B * item_words);
                std::copy(hq.beta.begin(), hq.beta.begin() + B * k,
                          collect->beta.begin() + t * B * k);
            }
            if (out)
                for (size_t b = 0; b < B; ++b) {
                    float *o = out + (t * B + b) * OW + d * Hs;
                    if (done(b))
                        std::fill(o, o + Hs, 0.0f);
                    else
                        std::copy(&h[b * Hs], &h[b * Hs] + Hs, o);
                }
        }
    }
}

void Session::run_block(const float *x, size_t t0, size_t n, float *out,
                        const int64_t *lengths) {
    const RnnShape &s = model_->shape_;
    const size_t L = size_t(s.layers), B = batch_, OW = s.output_size();
    const float *in = x;
    size_t in_width = s.input_size;
    const BinaryBatch *in_q = nullptr;
    for (size_t l = 0; l < L; ++l) {
        const bool last = l + 1 == L;
        float *o = out;
        if (!last) {
            if (layer_out_.size() < n * B * OW) layer_out_.resize(n * B * OW);
            o = layer_out_.data();
        }
        // One direction: the next layer's quantized input is the quantized h,
        // collected step by step (no second quantization of the same vector).
        // Only when the next layer quantizes its input as this one quantizes h.
        BinaryBatch *collect = model_->quantized_ && D_ == 1 && !last &&
                                       model_->dirs_[l + 1].ih.act == model_->dirs_[l].hh.act
                                   ? &seq_out_
                                   : nullptr;
        if (collect) collect->resize(model_->dirs_[l].hh.act.k, Hs_, n * B);
        for (size_t d = 0; d < D_; ++d)
            run_direction(l, d, in, in_width, in_q, t0, n, o, lengths, collect);
        if (!last) {
            std::swap(layer_in_, layer_out_);
            in = layer_in_.data();
            in_width = OW;
            in_q = nullptr;
            if (collect) {
                std::swap(seq_in_, seq_out_);
                in_q = &seq_in_;
            }
        }
    }
}

const float *Session::step(const float *x) {
    const size_t I = model_->shape_.input_size;
    if (D_ != 1)
        fail("step: the model is bidirectional; its reverse direction needs the whole "
             "sequence: use run()");
    if (!x) fail("step: x is null");
    check_finite(x, batch_, I, "step: x");
    if (x != input_.data()) std::copy(x, x + batch_ * I, input_.begin());
    run_block(input_.data(), 0, 1, nullptr, nullptr);
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
    // The decoder's input: h quantized for the recurrent product when the
    // decoder's quantizer is the same, else quantized for the decoder.
    const BinaryBatch *hq = &seq_in_;  // unused by a float decoder
    if (dec.quantized) {
        hq = &hq_.back();
        if (!(dec.act == model_->dirs_.back().hh.act)) {
            quantize_act_batch(h_.back().data(), Hs_, Hs_, batch_, dec.act.k, dec.act.iters, dq_,
                               0, dec.act.ternary);
            hq = &dq_;
        }
    }
    product(dec, *hq, h_.back().data(), Hs_, logits_padded_.data(), batch_);
    for (size_t b = 0; b < batch_; ++b)
        std::copy(&logits_padded_[b * stride], &logits_padded_[b * stride] + V, &logits_[b * V]);
    return h_.back().data();
}

const float *Session::logits() const {
    if (!model_->shape_.lm()) fail("logits: the model has no decoder (not a language model)");
    return logits_.data();
}

const float *Session::hidden(int layer, int direction) const {
    if (layer < 0 || layer >= model_->shape_.layers)
        fail("hidden: layer " + std::to_string(layer) + " out of range, expected 0.." +
             std::to_string(model_->shape_.layers - 1));
    if (direction < 0 || size_t(direction) >= D_)
        fail("hidden: direction " + std::to_string(direction) + " out of range, expected 0.." +
             std::to_string(D_ - 1));
    return h_[size_t(layer) * D_ + size_t(direction)].data();
}

const float *Session::cell(int layer, int direction) const {
    if (model_->shape_.arch != Arch::lstm) fail("cell: a GRU has no cell state");
    hidden(layer, direction);  // checks the range
    return c_[size_t(layer) * D_ + size_t(direction)].data();
}

bool Session::fused(StepCall call, int layer, int direction) const {
    hidden(layer, direction);  // checks the range
    const size_t ld = size_t(layer) * D_ + size_t(direction);
    return !(call == StepCall::run ? steps_ : full_steps_)[ld].empty();
}

namespace {

// Whether any of x[0, n) is Inf or NaN (its exponent bits all ones): one pass
// with no early exit, which vectorizes. Compiled for AVX-512 and AVX2 as well
// as the baseline, the best one this CPU runs chosen on the first call (run()
// checks all of its input with it: 8 floats per ns on SSE2, 4x that on
// AVX-512). Not target_clones: its ifunc resolver runs before ThreadSanitizer's
// runtime is up, and the instrumented program crashes at start.
inline __attribute__((always_inline)) bool scan_non_finite(const float *x, size_t n) {
    uint32_t any = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, x + i, sizeof u);
        any |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
    }
    return any != 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512bw,avx512vl"))) bool scan_non_finite_avx512(const float *x,
                                                                               size_t n) {
    return scan_non_finite(x, n);
}
__attribute__((target("avx2"))) bool scan_non_finite_avx2(const float *x, size_t n) {
    return scan_non_finite(x, n);
}
#endif

bool any_non_finite(const float *x, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    using Scan = bool (*)(const float *, size_t);
    static const Scan scan = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            return Scan(scan_non_finite_avx512);
        if (__builtin_cpu_supports("avx2")) return Scan(scan_non_finite_avx2);
        return Scan([](const float *p, size_t m) { return scan_non_finite(p, m); });
    }();
    return scan(x, n);
#else
    return scan_non_finite(x, n);
#endif
}

}  // namespace

void Session::check_finite(const float *x, size_t count, size_t width, const char *what) const {
    // The first culprit is looked for only when there is one.
    if (!any_non_finite(x, count * width)) return;
    for (size_t i = 0; i < count * width; ++i)
        if (!std::isfinite(x[i]))
            fail(std::string(what) + "[" + std::to_string(i / width) + "][" +
                 std::to_string(i % width) + "] is " + std::to_string(x[i]) +
                 ", expected a finite value");
}

void Session::run(const float *x, size_t T, float *out, const int64_t *lengths) {
    const RnnShape &s = model_->shape_;
    const size_t I = s.input_size, B = batch_, OW = s.output_size();
    if (T == 0) return;
    if (!x) fail("run: x is null");
    if (lengths)
        for (size_t b = 0; b < B; ++b)
            if (lengths[b] < 0 || uint64_t(lengths[b]) > T)
                fail("run: lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                     ", expected 0.." + std::to_string(T) + " (the steps given)");
    check_finite(x, T * B, I, "run: x");
    // One direction: blocks of a chunk, every layer over each (memory does not
    // grow with T); two: the whole sequence, as the reverse direction needs it.
    const size_t block = D_ == 1 ? run_chunk() : T;
    for (size_t t0 = 0; t0 < T; t0 += block)
        run_block(x + t0 * B * I, t0, std::min(block, T - t0), out ? out + t0 * B * OW : nullptr,
                  lengths);
}

void Session::run_tokens(const int64_t *tokens, size_t T, float *h_out, float *logits_out) {
    const size_t BH = batch_ * Hs_, BV = batch_ * model_->shape_.vocab_size;
    for (size_t t = 0; t < T; ++t) {
        const float *h = step_tokens(tokens + t * batch_);
        if (h_out) std::copy(h, h + BH, h_out + t * BH);
        if (logits_out) std::copy(logits_.begin(), logits_.end(), logits_out + t * BV);
    }
}


}  // namespace amq
