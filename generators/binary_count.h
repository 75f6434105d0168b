// The binary product's counts and their scaled sum, shared by bgemv, bgemm and
// the fused steps (lstm_step, gru_step):
//
//   y = bias + sum_i alpha_i sum_j beta_j (n - 2 c_ij),  c_ij = popcount(W_i ^ A_j)
//
// The accumulator of c_ij starts at -floor(n / 2) (two's complement in u64), so
// that it ends at a_ij = c_ij - floor(n / 2), and n - 2 c_ij = -2 a_ij + (n odd)
// is one f32 fma on the converted a_ij. Both are exact (|n - 2c| < 2^24), so
// the values are those of converting n - 2 c_ij in int32, which took an add and
// a subtract per count more.
#pragma once

#include <functional>

#include "Halide.h"

namespace amq::gen {

// The start of a popcount accumulator over n columns: -floor(n / 2).
inline Halide::Expr binary_count_start(Halide::Expr n) {
    using namespace Halide;
    return cast<uint64_t>(cast<int64_t>(0 - n / 2));
}

// sum_i alpha(i) sum_j beta(j) (n - 2 c_ij) from the accumulators count(i, j)
// (started at binary_count_start), in the order bgemv has always summed:
// j inner, i outer, the first term of each sum a product.
inline Halide::Expr binary_count_sum(std::function<Halide::Expr(int, int)> count,
                                     std::function<Halide::Expr(int)> alpha,
                                     std::function<Halide::Expr(int)> beta, Halide::Expr n,
                                     int k_w, int k_a) {
    using namespace Halide;
    const Expr odd = cast<float>(n % 2);
    Expr acc;
    for (int i = 0; i < k_w; ++i) {
        Expr inner;
        for (int j = 0; j < k_a; ++j) {
            // The low 32 bits of the u64 accumulator are a_ij in int32.
            Expr d = cast<float>(cast<int32_t>(count(i, j))) * -2.0f + odd;
            inner = j == 0 ? beta(j) * d : inner + beta(j) * d;
        }
        acc = i == 0 ? alpha(i) * inner : acc + alpha(i) * inner;
    }
    return acc;
}

}  // namespace amq::gen
