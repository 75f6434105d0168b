// The one spec of shapes, bit widths and edge cases that drives both the kernel
// tests (tests/) and the benchmarks (bench/). Add a shape here and it is tested
// and benchmarked.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace amq::spec {

struct Bits {
    int w, a;
};

// The one spelling of a bit pair in what amq prints and writes (CLI, JSON,
// records, docs): "W2A3" for 2 weight and 3 activation bits. (Kernel names
// keep the symbol form bgemv_w2a3.)
inline std::string bits_name(int w, int a) {
    return "W" + std::to_string(w) + "A" + std::to_string(a);
}
inline std::string bits_name(Bits b) { return bits_name(b.w, b.a); }

struct Shape {
    size_t rows, cols;  // y[rows] = W[rows x cols] x[cols]
};

// Every (k_w, k_a) pair the kernels are built for.
inline std::vector<Bits> all_bits() {
    std::vector<Bits> v;
    for (int w = 1; w <= 4; ++w)
        for (int a = 1; a <= 4; ++a) v.push_back({w, a});
    return v;
}

// Test sweep: lengths and row counts that are and are not multiples of the tiles.
inline const std::vector<size_t> test_cols = {1, 63, 64, 65, 127, 1000, 1024, 4097};
inline const std::vector<size_t> test_rows = {1, 7, 16, 1023, 4096};

// Benchmark shapes: square, the paper's 4096x1024 recurrent matrix, the LSTM
// H=1024 step (4 gates x 1024 rows, [x;h] = 2048 columns), and a large one.
inline const std::vector<Shape> bench_shapes = {
    {1024, 1024}, {4096, 1024}, {4096, 2048}, {16384, 4096}};
inline const std::vector<Bits> bench_bits = {{1, 1}, {2, 2}, {2, 3}, {3, 3}, {4, 4}};

// Activation lengths for quantize_act tests.
inline const std::vector<size_t> act_lengths = {1, 2, 63, 64, 65, 300, 1024, 4097};

// Vocabulary sizes for the log_softmax / top-k tests and benchmarks (6022: the
// demo language model, models/ptb_lstm300.safetensors), and its decoder product.
inline const std::vector<size_t> vocab_lengths = {1, 2, 15, 63, 64, 65, 1000, 6022, 10007};
inline const std::vector<size_t> bench_vocab = {6022, 10000, 50000};
inline const Shape lm_decoder_shape = {6022, 300};

}  // namespace amq::spec
