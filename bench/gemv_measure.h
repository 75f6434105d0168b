// Side-by-side timing of one GEMV shape: amq (activation quantization + bgemv),
// bgemv alone, the Halide float GEMV and OpenBLAS sgemv, measured in the same
// process, interleaved round by round, reported as medians.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "amq/kernels.h"
#include "amq/spec.h"

namespace amq::bench {

// A GEMV problem with random data: weights prepared for the kernels, the input x
// and its quantized planes, and (with_float) the float matrix of the baselines.
struct GemvProblem {
    BinaryMatrix W;
    // When W is bound to a per-problem variant: the same weights in the common
    // layout, unbound, so the common kernel runs them (else empty).
    BinaryMatrix W_common;
    BinaryVector a;
    std::vector<float> x, y, bias;
    AlignedVector<float> M;  // row-major [rows][cols], 64-byte aligned (OpenBLAS sgemv's)
    FloatMatrix F;         // M with bias, packed as the runtime keeps float weights
};
GemvProblem make_gemv_problem(size_t rows, size_t cols, spec::Bits bits, bool with_float,
                              int act_iters = 2);

struct GemvResult {
    size_t rows = 0, cols = 0;
    int k_w = 0, k_a = 0, threads = 1, iters = 2;
    std::string isa, layout;
    double amq_us = 0, amq_gemv_only_us = 0, quantize_act_us = 0;
    // When the product runs a per-problem variant: bgemv of the common kernel on
    // the same weights, timed in the same rounds (else 0).
    double common_gemv_only_us = 0;
    double f32_halide_us = 0, sgemv_us = 0;
    // With threads > 1: bgemv on one thread, timed in the same rounds (else 0).
    double amq_gemv_only_1thread_us = 0;
    double amq_spread = 0;  // (p90 - p10) / median of amq_us over the rounds
    // The product's floor on one thread (docs/PERFORMANCE.md): max of its groups at
    // the measured XOR+popcount rate and its weight bytes at the read bandwidth
    // of that size, both measured in the same rounds (cpu_limits.h, FloorProbes):
    // the median of the rounds' floors, and the median over the rounds of amq_us
    // / that round's floor; 0 when not measurable.
    double floor_us = 0, amq_vs_floor = 0;
    // The same work in an intrinsics loop, timed in the same rounds on one
    // thread: the weight bytes streamed once, each 512-bit vector combined with
    // k_a activation words (cpu_limits.h, stream_groups): how close ALU and
    // memory overlap in practice; 0 when not measurable.
    double stream_groups_us = 0;
    int rounds = 0;
    size_t weight_bytes = 0, f32_weight_bytes = 0;
};

// Times the candidates with amq's timing harness (amq/timing.h): `rounds`
// rounds in a new random order each, each sample enough calls (at least 10) to
// take about min_round_ms. With threads > 1, bgemv on one thread is one more
// candidate, so that the speed-up from threads is a ratio from one run.
GemvResult measure_gemv(size_t rows, size_t cols, spec::Bits bits, int threads, int rounds = 15,
                        double min_round_ms = 2.0, int act_iters = 2);

// Sets the threads of amq's kernels (amq::set_num_threads: amq's thread pool)
// and of OpenBLAS.
void set_threads(int threads);

}  // namespace amq::bench
