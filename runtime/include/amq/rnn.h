// The LSTM/GRU runner: a thin layer over the AOT kernels that does no math of its
// own beyond copies and the log-softmax.
//
//   auto model = amq::Model::load("model.amq");     // or a float .safetensors
//   amq::Session s(model, /*batch=*/1);             // h and c of every layer
//   const float *h = s.step(x);                     // one time step
//   s.run(x_seq, T, h_seq);                         // a whole sequence
//   s.set_state(h0, c0); s.run(x_seq, T, out, lengths); s.get_state(h_n, c_n);
//
// Every option of PyTorch's nn.LSTM / nn.GRU is supported: bidirectional
// layers (run() only), LSTM projections (proj_size), initial and final states in
// PyTorch's layout, and sequences of different lengths in one batch (as
// pack_padded_sequence with enforce_sorted=False).
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
// has its own k_w and its own activation quantizer (k_a; alternating, greedy or
// ternary). Each product quantizes its input with its matrix's quantizer: h for
// the recurrent product with weight_hh's, the layer input with weight_ih's (the
// quantized h of the layer below is reused when the two quantizers agree), the
// decoder's input with the decoder's.
#pragma once

#include <algorithm>
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
    int k_a() const { return k_a_; }
    int act_iters() const { return act_iters_; }  // model-wide; matrices() has each one's bits
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
        // float: packed in row panels with its bias (zeros if none), at load
        FloatMatrix floats;
        size_t rows = 0, cols = 0;
        bool quantized = false;
        ActQuant act;  // quantized: of its input vector
        size_t out_stride() const { return quantized ? binary.rows_padded() : rows; }
    };
    struct Direction {  // one direction of one layer
        Matrix ih, hh;
        Matrix hr;  // projected LSTM: [proj_size][hidden_size], no bias; else rows = 0
    };
    Model() = default;

    RnnShape shape_;
    bool quantized_ = false;
    int k_w_ = 0, k_a_ = 0, act_iters_ = 0;
    std::vector<Direction> dirs_;  // [layers * D]: direction d of layer l at l * D + d
    // Language models: embedding rows (float, or dequantized on lookup), decoder.
    std::vector<float> embedding_;
    QuantTensor embedding_q_;
    Matrix decoder_;
    std::vector<std::string> vocab_;
    std::map<std::string, std::string> metadata_;
    std::vector<QuantMatrixInfo> matrices_;
};

// Which kernels a quantized session runs a layer's step on, where a fused step
// kernel is built for its bits and batch (amq/kernels.h, fused_step_built):
//   chosen    the build's choice per problem (amq::step_choice: the schedules
//             file's "steps", timed by amq tune --steps; fused where it has no
//             entry), the default;
//   fused     the fused kernels wherever built;
//   separate  the separate kernels (products, cell, quantize_act) everywhere.
// The environment variable AMQ_FUSED_STEP=0 or =1 turns "chosen" into separate
// or fused (to compare them without a rebuild).
enum class StepKernels { chosen, fused, separate };

class Session {
public:
    explicit Session(std::shared_ptr<const Model> model, size_t batch = 1,
                     StepKernels kernels = StepKernels::chosen);

    const Model &model() const { return *model_; }
    size_t batch() const { return batch_; }

    // h and c of every layer back to 0.
    void reset();

    // The state in PyTorch's layout (h0 / h_n, c0 / c_n of nn.LSTM): h
    // [layers * D][batch][h_size], c [layers * D][batch][hidden_size], where D =
    // shape().directions(), row l * D + d is direction d (1 = reverse) of layer
    // l, and h_size = shape().h_size() (proj_size when projected). set_state: a
    // null h0 or c0 means zeros; c0 must be null for a GRU. get_state: either
    // may be null; c_n must be null for a GRU. Values must be finite.
    void set_state(const float *h0, const float *c0);
    void get_state(float *h_n, float *c_n) const;
    // Floats of the h and c state (what set_state reads): layers * D * batch *
    // h_size, and layers * D * batch * hidden_size (0 for a GRU).
    size_t h_state_size() const;
    size_t c_state_size() const;

    // One step on x [batch][input_size]; returns h of the last layer,
    // [batch][h_size], valid until the next call. Throws amq::Error on a
    // bidirectional model (its reverse direction needs the whole sequence: use
    // run()).
    const float *step(const float *x);
    // One step of a language model on token ids [batch] (each < vocab_size):
    // embedding lookup, the layers, and the decoder; logits() then holds
    // [batch][vocab_size].
    const float *step_tokens(const int64_t *tokens);
    const float *logits() const;
    // The state of direction `direction` of layer l: h [batch][h_size], c
    // [batch][hidden_size] (c: LSTM only).
    const float *hidden(int layer, int direction = 0) const;
    const float *cell(int layer, int direction = 0) const;

    // T steps: x [T][batch][input_size] -> out [T][batch][output_size] (may be
    // null), output_size = D * h_size: the last layer's h of the forward
    // direction followed by the reverse one's, as nn.LSTM's output. Starts from
    // the session's state (reset(), set_state() or the previous steps) and
    // leaves the final state in it; the reverse direction runs from step T-1
    // down to 0. lengths [batch] (null: every sequence has T steps), each in
    // 0..T: sequence b has lengths[b] valid steps, as pack_padded_sequence with
    // enforce_sorted=False (which needs >= 1; 0 leaves the sequence's state
    // alone, for a sequence run in pieces); its outputs at steps >= lengths[b] are 0, its final
    // state is the state after its last valid step (the reverse direction starts
    // at step lengths[b]-1), and its x at the padding steps (which must be finite)
    // does not change any result. A unidirectional model without lengths gets the same
    // results as T step() calls. The model runs layer by layer, the input
    // products over chunks of run_chunk() steps in one batched product (each
    // weight word read once for all its steps), as oneDNN does for a sequence.
    void run(const float *x, size_t T, float *out, const int64_t *lengths = nullptr);
    static constexpr size_t kRunChunk = 64;
    // Whether direction d of layer l runs its step on a fused kernel (made so at
    // construction): in run() (StepCall::run: the recurrent step) or in step()
    // (StepCall::step: the full step from x_t, for the layers whose input comes
    // as floats: layer 0, and a layer whose input quantizer is not the h
    // quantizer of the layer below; the others, and where this is false, take
    // run()'s kernels).
    bool fused(StepCall call, int layer = 0, int direction = 0) const;
    // The steps of a chunk: kRunChunk items (steps times the batch; at least one
    // step), so that a chunk's input gates stay in cache for its steps (at batch
    // 8 and hidden 1024, 8 steps: 1 MB, where 64 steps took 8 MB and ran 5-14%
    // slower).
    size_t run_chunk() const { return std::max<size_t>(1, kRunChunk / batch_); }
    // T steps of tokens [T][batch] -> h_out [T][batch][hidden] (may be null) and
    // logits_out [T][batch][vocab] (may be null).
    void run_tokens(const int64_t *tokens, size_t T, float *h_out, float *logits_out);

private:
    // One block of n steps starting at step t0 of run(): every layer over the
    // block, in turn. x [n][B][input_size]; out [n][B][output_size] or null.
    void run_block(const float *x, size_t t0, size_t n, float *out, const int64_t *lengths);
    // Direction d of layer l over the block: in [n][B][in_width] (floats),
    // out [n][B][output_size] at column d * h_size (or null). in_q: the quantized
    // inputs of the whole block when the caller has them (a block of one chunk;
    // else null: quantized here chunk by chunk). collect: where the quantized h
    // of every step goes (the next layer's in_q), or null.
    void run_direction(size_t l, size_t d, const float *in, size_t in_width,
                       const BinaryBatch *in_q, size_t t0, size_t n, float *out,
                       const int64_t *lengths, BinaryBatch *collect);
    // The cell of direction ld on gx [B][gx_stride] and gh_, then (projected) the
    // projection: h_[ld] and c_[ld] updated in place.
    void cell_step(size_t ld, const float *gx, size_t gx_stride, size_t gh_stride);
    void check_finite(const float *x, size_t count, size_t width, const char *what) const;
    void quantize_hidden(size_t ld);
    // The recurrent half of direction ld's step (product, cell, quantized h_t)
    // in one fused kernel, when one was chosen for it (at construction: no
    // projection, a kernel built for its bits and the batch, and StepKernels);
    // false: do it apart. gx: item b's at gx + b ih.out_stride() (as bound).
    bool fused_step(size_t ld, const float *gx);
    // Direction ld's whole step of one sequence from its float input x (the
    // full step kernel: x's quantization and product too); only where
    // full_steps_[ld] is bound.
    void full_step(size_t ld, const float *x);
    void product(const Model::Matrix &m, const BinaryBatch &aq, const float *a, size_t a_stride,
                 float *y, size_t items);

    std::shared_ptr<const Model> model_;
    size_t batch_;
    size_t H_, G_, Hs_, D_;                  // hidden, gates, h_size, directions
    std::vector<float> input_;               // [B][input_size]: step()'s x
    std::vector<std::vector<float>> h_, c_;  // per direction [B][h_size], [B][H]
    std::vector<BinaryBatch> hq_;            // per direction: quantized h
    BinaryBatch seq_in_, seq_out_;           // quantized inputs of a chunk / of the next layer
    std::vector<float> gx_seq_;              // [chunk][B][stride]
    std::vector<float> gh_;                  // [B][stride] recurrent pre-activations
    std::vector<float> m_, proj_;            // projected LSTM: o * tanh(c) [B][H], W_hr m
    BinaryBatch mq_;                         // projected LSTM: quantized m_
    BinaryBatch dq_;  // LM: h of the last layer for the decoder, when its quantizer is not weight_hh's
    std::vector<float> layer_out_;           // [n][B][output_size]: a layer's outputs
    std::vector<float> layer_in_;            // the layer below's outputs
    std::vector<float> saved_h_, saved_c_;   // run() with lengths: states of finished items
    std::vector<float> logits_;              // [B][vocab] (dense)
    std::vector<float> logits_padded_;       // [B][rows_padded] from bgemm
    // Per direction: the fused step run() takes (fused_step()), and the full
    // step step() takes (full_step()); empty where the separate kernels run.
    std::vector<FusedStep> steps_, full_steps_;
    BinaryBatch hq_next_;                    // fused_step(): planes of h_t
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
