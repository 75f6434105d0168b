// Scalar references for the fused recurrent cells (one batch item, one step),
// exactly PyTorch's nn.LSTM and nn.GRU cells, in double arithmetic.
//
// gx = W_ih x_t + b_ih and gh = W_hh h_{t-1} + b_hh are the gate pre-activations
// (what the binary products compute), H the hidden size.
//   LSTM (gates i, f, g, o: gx[q * H + h] is gate q of unit h):
//     i = sigmoid(gx_i + gh_i), f = sigmoid(gx_f + gh_f), g = tanh(gx_g + gh_g),
//     o = sigmoid(gx_o + gh_o);  c = f c_prev + i g;  h = o tanh(c)
//   GRU (gates r, z, n):
//     r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r gh_n);
//     h = (1 - z) n + z h_prev
#pragma once

#include <cstddef>

namespace amq::ref {

double sigmoid(double x);

// gx, gh [4H]; c_prev, h_out, c_out [H].
void lstm_cell(const float *gx, const float *gh, const float *c_prev, size_t H, double *h_out,
               double *c_out);

// gx, gh [3H]; h_prev, h_out [H].
void gru_cell(const float *gx, const float *gh, const float *h_prev, size_t H, double *h_out);

}  // namespace amq::ref
