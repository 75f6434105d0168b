// The scalar reference runner: a whole LSTM/GRU (float or quantized, optionally a
// language model) over T steps of B independent sequences, built from the scalar
// references only. The runtime's tests compare the Halide runner against it.
//
// It does what the runtime does, in the same order, in double arithmetic, and
// rounds to float exactly where the runtime stores a float:
//   per step t, per layer l, per batch item b:
//     v = the layer input (x_t, the embedding row of token_t, or h of layer l-1)
//     quantized model: v and h_{t-1} are each quantized online, for each matrix
//       with that matrix's bits (ModelFile::bits_of: alternating with act_iters
//       cycles, greedy, or ternary) to k_a planes with float scales, then
//       gx = W_ih (x) v + b_ih and gh = W_hh (x) h_{t-1} + b_hh are binary products
//       (ref::binary_gemv); float model: plain products in double;
//     gx, gh are rounded to float, the cell (ref::lstm_cell / gru_cell) runs in
//     double and h_t, c_t are rounded to float;
//   decoder: logits = W_dec h_t + b_dec (binary product when quantized).
// A quantized embedding row is its dequantized value sum_i alpha_i b_i in float.
// h and c start at 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "amq/model.h"

namespace amq::ref {

struct RnnOutput {
    std::vector<float> h;       // [T][B][hidden]: the last layer's h_t
    std::vector<float> logits;  // [T][B][vocab] for a language model, else empty
};

// x: [T][B][input_size] (models without an embedding); tokens: [T][B] (language
// models; every id < vocab_size). Exactly one of them is non-null.
RnnOutput run_model(const ModelFile &model, const float *x, const int64_t *tokens, size_t T, size_t B);

}  // namespace amq::ref
