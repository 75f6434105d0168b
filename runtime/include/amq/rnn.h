// The LSTM/GRU runner: a thin layer over the AOT kernels that does no math of its
// own beyond copies and the log-softmax.
//
//   auto model = amq::Model::load("model.amq");     // or a float .safetensors
//   amq::Session s(model, /*batch=*/1);             // h and c of every layer
//   const float *h = s.step(x);                     // one time step
//   s.run(x_seq, T, h_seq);                         // a whole sequence
//
// A Model is immutable once loaded and may be shared by any number of sessions in
// any number of threads; a Session belongs to one thread at a time. Per step a
// quantized model runs, for each layer: quantize_act on the layer input (layer 0
// only: the other layers reuse the quantized h of the layer below), two binary
// products (bgemv for one sequence, bgemm for a batch, which streams every weight
// word once for all B sequences) with the biases folded in, and the fused cell
// (lstm_cell / gru_cell); then quantize_act on the new h, which serves the layer
// above now, the decoder now and the recurrent product at the next step. A float
// model runs f32_gemv in place of the binary products. A session allocates all
// its buffers when it is made: steps allocate nothing.
//
// Bits per matrix (docs/MODEL_FORMAT.md, matrix_bits): every quantized matrix
// has its own k_w and its own activation quantizer (k_a, alternating / greedy /
// ternary). A vector that feeds several matrices (h of layer l feeds
// weight_hh_l, weight_ih_l(l+1) and, for the last layer, the decoder) is
// quantized once per distinct quantizer among them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "amq/kernels.h"
#include "amq/model.h"

namespace amq {

class Model {
public:
    // Loads a float model or an .amq file and prepares it for the kernels (the
    // weight planes are repacked into the kernel layout). Throws st::FormatError
    // naming the file and tensor for a malformed file, amq::Error otherwise.
    static std::shared_ptr<const Model> load(const std::string &path);
    static std::shared_ptr<const Model> from_file(const ModelFile &file);

    const RnnShape &shape() const { return shape_; }
    bool quantized() const { return quantized_; }
    int k_w() const { return k_w_; }
    int k_a() const { return k_a_; }  // model-wide; see matrices() for each matrix's
    int act_iters() const { return act_iters_; }
    // Every quantized matrix with its shape and bits (empty for a float model).
    const std::vector<QuantMatrixInfo> &matrices() const { return matrices_; }
    const std::vector<std::string> &vocab() const { return vocab_; }
    const std::map<std::string, std::string> &metadata() const { return metadata_; }
    // Bytes of the weights as the kernels hold them (planes, scales, floats).
    size_t weight_bytes() const;

private:
    friend class Session;
    // How the vector a quantized matrix multiplies is quantized online.
    struct ActQuant {
        int k = 0, iters = 0;  // planes; alternating cycles (0 = greedy)
        bool ternary = false;  // quantize_act_ternary (k = 2)
        bool operator==(const ActQuant &o) const {
            return k == o.k && iters == o.iters && ternary == o.ternary;
        }
    };
    struct Matrix {  // one weight matrix with its bias, on the binary or the f32 kernels
        BinaryMatrix binary;
        std::vector<float> weights, bias;  // float: [rows][cols], bias [rows] (0 if none)
        size_t rows = 0, cols = 0;
        bool quantized = false;
        ActQuant act;  // quantized: of its input vector
        size_t out_stride() const { return quantized ? binary.rows_padded() : rows; }
    };
    struct Layer {
        Matrix ih, hh;
    };
    Model() = default;

    RnnShape shape_;
    bool quantized_ = false;
    int k_w_ = 0, k_a_ = 0, act_iters_ = 0;
    std::vector<Layer> layers_;
    // Language models: embedding rows (float, or dequantized on lookup), decoder.
    std::vector<float> embedding_;
    QuantTensor embedding_q_;
    Matrix decoder_;
    std::vector<std::string> vocab_;
    std::map<std::string, std::string> metadata_;
    std::vector<QuantMatrixInfo> matrices_;
};

class Session {
public:
    explicit Session(std::shared_ptr<const Model> model, size_t batch = 1);

    const Model &model() const { return *model_; }
    size_t batch() const { return batch_; }

    // h and c of every layer back to 0.
    void reset();

    // One step on x [batch][input_size]; returns h of the last layer,
    // [batch][hidden_size], valid until the next call.
    const float *step(const float *x);
    // One step of a language model on token ids [batch] (each < vocab_size):
    // embedding lookup, the layers, and the decoder; logits() then holds
    // [batch][vocab_size].
    const float *step_tokens(const int64_t *tokens);
    const float *logits() const;
    // The state of layer l: [batch][hidden_size] each (c: LSTM only).
    const float *hidden(int layer) const;
    const float *cell(int layer) const;

    // T steps: x [T][batch][input_size] -> h_out [T][batch][hidden_size] (may be
    // null). The same results as T step() calls; a quantized model runs layer by
    // layer over chunks of up to kRunChunk steps, with the input products of a
    // whole chunk in one batched binary product (each weight word read once for
    // all its steps), as oneDNN does for a sequence.
    void run(const float *x, size_t T, float *h_out);
    static constexpr size_t kRunChunk = 64;
    // T steps of tokens [T][batch] -> h_out [T][batch][hidden] (may be null) and
    // logits_out [T][batch][vocab] (may be null).
    void run_tokens(const int64_t *tokens, size_t T, float *h_out, float *logits_out);

private:
    // One vector quantized once for each distinct quantizer of the matrices it
    // feeds: q[i] by settings[i].
    struct QuantizedVector {
        std::vector<Model::ActQuant> settings;
        std::vector<BinaryBatch> q;
        // The index of `a` (added when new, sized for n values x batch items).
        size_t slot(const Model::ActQuant &a, size_t n, size_t batch);
    };
    // Quantizes item b of x (n values) into every slot of `v`.
    static void quantize_into(const float *x, size_t n, QuantizedVector &v, size_t b);
    void layers_step();
    void cell_step(size_t l, const float *gx, size_t gx_stride, size_t gh_stride);
    void run_chunk(const float *x, size_t n, float *h_out);
    void check_finite(const float *x, size_t count, size_t width, const char *what) const;
    void quantize_hidden(size_t l);
    void product(const Model::Matrix &m, const BinaryBatch &aq, const float *a, size_t a_stride,
                 float *y);

    std::shared_ptr<const Model> model_;
    size_t batch_;
    size_t H_, G_;
    std::vector<float> input_;               // [B][input_size]
    std::vector<std::vector<float>> h_, c_;  // per layer [B][H]
    std::vector<QuantizedVector> hq_;        // per layer: quantized h
    QuantizedVector xq_;                     // quantized layer-0 input
    // Slots of each matrix's input: ih_slot_[l] in xq_ (l = 0) or hq_[l - 1],
    // hh_slot_[l] in hq_[l], dec_slot_ in hq_.back().
    std::vector<size_t> ih_slot_, hh_slot_;
    size_t dec_slot_ = 0;
    BinaryBatch seq_in_, seq_out_;           // run(): quantized inputs of a chunk
    std::vector<float> gx_seq_;              // run(): [chunk][B][stride]
    std::vector<float> gx_, gh_;             // [B][stride] gate pre-activations
    std::vector<float> logits_;              // [B][vocab] (dense)
    std::vector<float> logits_padded_;       // [B][rows_padded] from bgemm
};

// The language model's head, on the log_softmax kernel (generators/log_softmax.h).
// out[i] = x[i] - lse, lse = log(sum_j exp(x[j])) (shifted by the max), over n >= 1
// values; returns lse. out may be x (in place) or null (then only lse). Throws
// amq::Error when x holds NaN or Inf.
float log_softmax(const float *x, size_t n, float *out);
// The index of the largest of x[0..n) (the lowest index among equal values).
size_t argmax(const float *x, size_t n);
// The indices of the k largest of x[0..n) (1 <= k <= n), largest first, equal
// values by lower index: the k blocks of largest block maxima from the
// log_softmax kernel, then a partial sort of their k x 64 values.
std::vector<size_t> top_k(const float *x, size_t n, size_t k);

}  // namespace amq
