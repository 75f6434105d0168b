// Scalar references for the recurrent cells: see amq/reference_cell.h.
#include "amq/reference_cell.h"

#include <cmath>

namespace amq::ref {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void lstm_cell(const float *gx, const float *gh, const float *c_prev, size_t H, double *h_out,
               double *c_out) {
    auto pre = [&](int q, size_t h) { return double(gx[q * H + h]) + double(gh[q * H + h]); };
    for (size_t h = 0; h < H; ++h) {
        const double i = sigmoid(pre(0, h)), f = sigmoid(pre(1, h)), g = std::tanh(pre(2, h)),
                     o = sigmoid(pre(3, h));
        c_out[h] = f * double(c_prev[h]) + i * g;
        h_out[h] = o * std::tanh(c_out[h]);
    }
}

void gru_cell(const float *gx, const float *gh, const float *h_prev, size_t H, double *h_out) {
    for (size_t h = 0; h < H; ++h) {
        const double r = sigmoid(double(gx[h]) + double(gh[h]));
        const double z = sigmoid(double(gx[H + h]) + double(gh[H + h]));
        const double n = std::tanh(double(gx[2 * H + h]) + r * double(gh[2 * H + h]));
        h_out[h] = (1.0 - z) * n + z * double(h_prev[h]);
    }
}

}  // namespace amq::ref
