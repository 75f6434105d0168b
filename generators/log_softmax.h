// log_softmax: the language model's output over the vocabulary,
//   y(v) = x(v) - lse,  lse = m + log(sum_v exp(x(v) - m)),  m = max_v x(v),
// and the maximum of every block of kBlock logits, from which the runtime picks
// the argmax and the top k of a generation step without another pass over x
// (amq::top_k: the k largest values lie in the k blocks of largest maxima).
//
// Passes over x: the block maxima (vectorized over `vector` lanes inside a
// block), their maximum m, the sum of exp(x - m) in f32 rfactored over `vector`
// lanes, then y. The last block reads x clamped to its last element (a
// repeated value changes no maximum) and the sum masks v >= n.
//
//   x(v)          f32  n >= 1 logits
//   y(v)          f32  log-probabilities, n values
//   lse()         f32  log-sum-exp
//   block_max(b)  f32  max of x over [b kBlock, min(n, (b + 1) kBlock)), b < ceil(n / kBlock)
#pragma once

#include <string>

#include "Halide.h"

namespace amq::gen {

constexpr int kLogSoftmaxBlock = 64;  // logits per block maximum

struct LogSoftmaxKnobs {
    int vector = 16;  // f32 lanes of every pass; divides kLogSoftmaxBlock
    int unroll = 1;   // vectors of the exp sum per loop iteration (independent partial sums)
};

// Why a knob value cannot be built, or "" (the generator and the tuner check it).
inline std::string log_softmax_knobs_error(const LogSoftmaxKnobs &k) {
    if (k.vector < 1 || k.vector > kLogSoftmaxBlock || kLogSoftmaxBlock % k.vector != 0)
        return "vector = " + std::to_string(k.vector) + " (expected a divisor of " +
               std::to_string(kLogSoftmaxBlock) + ")";
    if (k.unroll < 1 || k.unroll > 8)
        return "unroll = " + std::to_string(k.unroll) + " (expected 1..8)";
    return "";
}

struct LogSoftmaxFuncs {
    Halide::Func lane_max, block_max, max_all, exp_sum, lse, y;
    Halide::RDom rin, rsum;
    Halide::Var v{"v"}, b{"b"}, l{"l"};
};

inline LogSoftmaxFuncs log_softmax_algorithm(Halide::Func x, Halide::Expr n, int vector,
                                             int unroll) {
    using namespace Halide;
    LogSoftmaxFuncs f;
    const int B = kLogSoftmaxBlock;
    Expr blocks = (n + B - 1) / B;
    auto xc = [&](Expr e) { return x(min(e, n - 1)); };

    // Lane l of block b: the max over the elements l, l + vector, ... of the block.
    f.rin = RDom(0, B / vector, "rin");
    f.lane_max = Func("lane_max");
    f.lane_max(f.l, f.b) = xc(f.b * B + f.l);  // the first vector again below: max is idempotent
    f.lane_max(f.l, f.b) = max(f.lane_max(f.l, f.b), xc(f.b * B + f.rin * vector + f.l));
    RDom rl(0, vector, "rl");
    f.block_max = Func("block_max");
    f.block_max(f.b) = maximum(f.lane_max(rl, f.b));
    RDom rb(0, blocks, "rb");
    f.max_all = Func("max_all");
    f.max_all() = maximum(f.block_max(rb));
    Expr m = f.max_all();

    // sum exp(x - m) over [chunks][vector * unroll] lanes, masked past n.
    const int width = vector * unroll;
    f.rsum = RDom(0, width, 0, (n + width - 1) / width, "rsum");
    Expr e = f.rsum.y * width + f.rsum.x;
    f.exp_sum = Func("exp_sum");
    f.exp_sum() = 0.0f;
    f.exp_sum() += select(e < n, exp(xc(e) - m), 0.0f);
    f.lse = Func("lse");
    f.lse() = m + log(f.exp_sum());
    f.y = Func("y");
    f.y(f.v) = x(f.v) - f.lse();
    return f;
}

inline void log_softmax_schedule(LogSoftmaxFuncs &f, const LogSoftmaxKnobs &k) {
    using namespace Halide;
    f.lane_max.compute_root().vectorize(f.l).update().vectorize(f.l);
    f.block_max.compute_root();
    f.max_all.compute_root();
    Var u("u");
    Func intm = f.exp_sum.update().rfactor(f.rsum.x, u);
    intm.compute_root().vectorize(u, k.vector).update().vectorize(u, k.vector);
    f.exp_sum.compute_root();
    f.lse.compute_root();
    f.y.vectorize(f.v, k.vector, TailStrategy::GuardWithIf);
}

}  // namespace amq::gen
