// The scalar reference runner: a whole LSTM/GRU (float or quantized, optionally a
// language model) over T steps of B independent sequences, built from the scalar
// references only. The runtime's tests compare the Halide runner against it.
//
// It does what the runtime does in double arithmetic, and rounds to float
// exactly where the runtime stores a float. For every layer l, direction d
// (1 = reverse: steps from the sequence's last valid one down to 0) and batch
// item b, per step t:
//     v = the layer input (x_t, the embedding row of token_t, or the outputs of
//       layer l-1 at t: forward h then reverse h);
//     quantized model: v and h_{t-1} are each quantized online (alternating with
//       act_iters cycles, or greedy) to k_a planes with float scales, then
//       gx = W_ih (x) v + b_ih and gh = W_hh (x) h_{t-1} + b_hh are binary products
//       (ref::binary_gemv); float model: plain products in double;
//     gx, gh are rounded to float, the cell (ref::lstm_cell / gru_cell) runs in
//     double and its h_t, c_t are rounded to float; a projected LSTM then has
//     h_t = W_hr (x) h_t (the cell's h quantized online, no bias) rounded to float;
//   decoder: logits = W_dec h_t + b_dec (binary product when quantized).
// A quantized embedding row is its dequantized value sum_i alpha_i b_i in float.
// h and c start at h0, c0 (or 0); steps at or past a sequence's length leave its
// state alone and output 0 (PyTorch's packed sequences).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/model.h"

namespace amq::ref {

struct RnnOptions {
    const float *h0 = nullptr;         // [layers * D][B][h_size], or null: zeros
    const float *c0 = nullptr;         // LSTM: [layers * D][B][hidden_size], or null: zeros
    const int64_t *lengths = nullptr;  // [B], each 0..T, or null: all T
};

struct RnnOutput {
    std::vector<float> h;       // [T][B][output_size]: the last layer's outputs
    std::vector<float> logits;  // [T][B][vocab] for a language model, else empty
    std::vector<float> h_n;     // [layers * D][B][h_size]: the final state
    std::vector<float> c_n;     // LSTM: [layers * D][B][hidden_size], else empty
};

// x: [T][B][input_size] (models without an embedding); tokens: [T][B] (language
// models; every id < vocab_size). Exactly one of them is non-null.
RnnOutput run_model(const ModelFile &model, const float *x, const int64_t *tokens, size_t T,
                    size_t B, const RnnOptions &options = {});

}  // namespace amq::ref
