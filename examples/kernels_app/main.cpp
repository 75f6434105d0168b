// kernels_app: amq's kernels called directly, with nothing but the directory
// `amq generate --bits W2A2` writes (see Makefile and docs/USING.md).
//
// y = W x with W quantized to 2 bits per weight (two sign planes with a scale
// per row, greedy) and x quantized online to 2 bits by the quantize_act kernel:
//   pack_bits_kernel   +/-1 codes      -> bit planes in the kernels' weight layout
//   quantize_act_a2_t2 x (float)       -> 2 bit planes + 2 scales (alternating, T = 2)
//   bgemv_w2a2         planes, scales  -> y (XOR + popcount)
// and checks y against the same quantized product computed in double.
//
//   kernels_app [ROWS COLS]     (default 1000 700)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "HalideBuffer.h"       // Halide::Runtime::Buffer (copied by amq generate)
#include "amq/weight_layout.h"  // the strides of the weight layouts
#include "amq_kernels.h"        // every kernel; AMQ_GENERATED_LAYOUT, AMQ_GENERATED_TILE

using Halide::Runtime::Buffer;

int main(int argc, char **argv) {
    const int rows = argc > 2 ? std::atoi(argv[1]) : 1000;
    const int cols = argc > 2 ? std::atoi(argv[2]) : 700;
    if (rows < 1 || cols < 1) {
        std::fprintf(stderr, "usage: kernels_app [ROWS COLS], each >= 1\n");
        return 2;
    }
    const int k_w = 2, k_a = 2, tile = AMQ_GENERATED_TILE;
    const int words = (cols + 63) / 64, tiles = (rows + tile - 1) / tile;

    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> W(size_t(rows) * cols), x(size_t(words) * 64, 0.0f);
    for (float &w : W) w = normal(rng);
    for (int c = 0; c < cols; ++c) x[c] = normal(rng);  // zero padded to 64 columns

    // 1. Weights, offline: greedy 2-bit quantization of each row. codes(c, r, i)
    //    is +1/-1, alpha(lane, i, tile) the scale of plane i of row tile*t + lane.
    Buffer<float> codes(cols, rows, k_w);
    Buffer<float> alpha(tile, k_w, tiles), bias(tile, tiles);
    alpha.fill(0.0f);
    bias.fill(0.0f);
    for (int r = 0; r < rows; ++r) {
        std::vector<double> res(W.begin() + size_t(r) * cols, W.begin() + size_t(r + 1) * cols);
        for (int i = 0; i < k_w; ++i) {
            double mean_abs = 0;
            for (double v : res) mean_abs += std::fabs(v);
            mean_abs /= cols;
            for (int c = 0; c < cols; ++c) {
                const float b = res[c] >= 0 ? 1.0f : -1.0f;
                codes(c, r, i) = b;
                res[c] -= mean_abs * b;
            }
            alpha(r % tile, i, r / tile) = float(mean_abs);
        }
    }

    // 2. Pack the codes into the layout the kernels were generated for.
    amq::LayoutStrides<int> s;
    if (!amq::layout_strides<int>(AMQ_GENERATED_LAYOUT, tile, k_w, words, tiles, s)) return 1;
    std::vector<uint64_t> planes(size_t(k_w) * tiles * tile * words);
    halide_dimension_t dims[4] = {{0, tile, s.r}, {0, k_w, s.i}, {0, words, s.w}, {0, tiles, s.t}};
    Buffer<uint64_t> Wq(planes.data(), 4, dims);
    if (amq_pack_bits_kernel(codes, Wq) != 0) return 1;

    // 3. The activation vector, online (every step of an RNN).
    std::vector<uint64_t> A(size_t(k_a) * words);
    Buffer<float> xb(x.data(), words * 64), beta(k_a);
    Buffer<uint8_t> A_bytes(reinterpret_cast<uint8_t *>(A.data()), words * 8, k_a);
    if (amq_quantize_act_a2_t2(xb, cols, A_bytes, beta) != 0) return 1;

    // 4. The product.
    Buffer<uint64_t> Ab(A.data(), words, k_a);
    Buffer<float> y(tile, tiles);
    if (amq_bgemv_w2a2(Wq, alpha, bias, Ab, beta, cols, /*parallel=*/true, y) != 0) return 1;

    // 5. The same quantized product in double, and the float product for scale.
    double max_err = 0, max_ref = 0, quant_err = 0, norm = 0;
    for (int r = 0; r < rows; ++r) {
        double ref = 0, exact = 0;
        for (int c = 0; c < cols; ++c) {
            double w = 0, a = 0;
            for (int i = 0; i < k_w; ++i) w += alpha(r % tile, i, r / tile) * codes(c, r, i);
            for (int j = 0; j < k_a; ++j)
                a += beta(j) * ((A[size_t(j) * words + c / 64] >> (c % 64) & 1) ? 1.0 : -1.0);
            ref += w * a;
            exact += double(W[size_t(r) * cols + c]) * x[c];
        }
        const double got = y(r % tile, r / tile);
        max_err = std::fmax(max_err, std::fabs(got - ref));
        max_ref = std::fmax(max_ref, std::fabs(ref));
        quant_err += (got - exact) * (got - exact), norm += exact * exact;
    }
    std::printf("kernels for %s: y = W x, %dx%d, W2A2\n", AMQ_GENERATED_TARGET, rows, cols);
    std::printf("y[0..2] = %.4f %.4f %.4f\n", y(0, 0), rows > 1 ? y(1 % tile, 1 / tile) : 0.0f,
                rows > 2 ? y(2 % tile, 2 / tile) : 0.0f);
    std::printf("max |y - quantized product in double| = %.3g (of max |y| %.3g)\n", max_err,
                max_ref);
    std::printf("relative error against the float product W x: %.3f\n",
                std::sqrt(quant_err / norm));
    if (!(max_err <= 1e-4 * max_ref + 1e-4)) {
        std::printf("FAILED: the kernels disagree with the double product\n");
        return 1;
    }
    std::printf("ok\n");
    return 0;
}
