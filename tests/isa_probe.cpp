// Prints the kernels' outputs on fixed inputs after the name of the ISA variant
// in use: packed words in hex, one per line, and floats as "value scale" in hex
// float, where scale bounds the magnitude of the terms summed into the value. test_isa.cpp runs it
// under each AMQ_ISA value and compares.
#include <cmath>
#include <cstdio>
#include <vector>

#include "amq/kernels.h"
#include "amq/spec.h"
#include "kernel_testing.h"

int main() {
    try {
        std::printf("isa %s\n", amq::isa_name(amq::active_isa()));
        const size_t rows = 37, cols = 1000;
        auto x = amq::testing::heavy_tailed(cols, 11);
        for (auto b : amq::spec::all_bits()) {
            auto W = amq::testing::random_planes(b.w, rows, cols, 5 + b.w);
            auto alpha = amq::testing::normal(rows * b.w, 6);
            auto bias = amq::testing::normal(rows, 7);
            auto M = amq::BinaryMatrix::from_planes(W.data(), alpha.data(), b.w, rows, cols,
                                                    bias.data());
            amq::BinaryVector a;
            amq::quantize_act(x.data(), cols, b.a, 2, a);
            std::vector<float> y(rows);
            amq::bgemv(M, a, y.data());
            double bscale = 0;
            for (float v : a.beta) {
                std::printf("%a %a\n", v, double(std::abs(v)));
                bscale += std::abs(v);
            }
            for (auto w : a.planes) std::printf("%016llx\n", (unsigned long long)w);
            for (size_t r = 0; r < rows; ++r) {
                double scale = std::abs(bias[r]);
                for (int i = 0; i < b.w; ++i)
                    scale += std::abs(alpha[r * b.w + i]) * bscale * double(cols);
                std::printf("%a %a\n", y[r], scale);
            }
        }
        auto M = amq::testing::normal(rows * cols, 8);
        std::vector<float> y(rows);
        amq::f32_gemv(amq::FloatMatrix::from_rows(M.data(), rows, cols), x.data(), cols, y.data());
        for (size_t r = 0; r < rows; ++r) {
            double scale = 0;
            for (size_t c = 0; c < cols; ++c) scale += std::abs(double(M[r * cols + c]) * x[c]);
            std::printf("%a %a\n", y[r], scale);
        }
        for (auto w : amq::pack_bits(M.data(), 1, rows, cols))
            std::printf("%016llx\n", (unsigned long long)w);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "isa_probe: %s\n", e.what());
        return 1;
    }
}
