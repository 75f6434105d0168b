// Element-wise math shared by the fused cell pipelines (lstm_cell, gru_cell,
// lstm_step, gru_step).
//
// sigmoid is 1 / (1 + e^-x) on Halide's f32 exp (vectorizable, accurate to the
// last bit), which keeps its relative accuracy near 0: an LSTM multiplies a
// forget gate near 0 by a cell state that may be large. exp overflows to +inf
// and underflows to 0 as it should for |x| up to about 1e9, but past that its
// range reduction overflows an int32 (it returns 0 for 1e30), so its argument is
// clamped to [-100, 100], where sigmoid has long reached 0 or 1 in f32.
// tanh is a rational function, an odd polynomial of degree 13 over an even one
// of degree 6 (the minimax coefficients of Eigen's float tanh), on x clamped to
// +-7.905..., where tanh has reached +-1 in f32: one division and no exp, which
// makes the LSTM cell about 1.4x as fast as tanh(x) = 1 - 2 / (1 + e^2x) did
// (H = 1024, B = 8, Halide JIT on the Zen 5 VM). Its values are near +-1 where
// it saturates, so only its absolute error matters there.
// Absolute error against double (x in [-30, 30] in steps of 1e-5): sigmoid
// 9e-8, tanh 2.8e-7. The limits are exact (0, 1, +-1 at +-inf); NaN stays NaN.
// Both divide with a true division: Halide 14's fast_inverse and one Newton
// step instead made the cells 1.3-1.4x slower on the Zen 5 VM (LSTM, H = 1024,
// B = 1: 1.59-1.65 us against 1.14-1.15 us, `amq_bench_batch
// --benchmark_filter=cell`), since it splits 16 lanes into two 8-lane rcpps.
#pragma once

#include "Halide.h"

namespace amq::gen {

// x is NaN, tested on the bits (the code is compiled with fast-math flags under
// which a float comparison may be assumed never to see NaN).
inline Halide::Expr cell_is_nan(const Halide::Expr &x) {
    using namespace Halide;
    return (reinterpret<uint32_t>(x) & Expr(0x7fffffffu)) > Expr(0x7f800000u);
}

// 1 / (1 + e^-x)
inline Halide::Expr cell_sigmoid(const Halide::Expr &x) {
    using namespace Halide;
    return select(cell_is_nan(x), x, 1.0f / (1.0f + exp(clamp(-x, -100.0f, 100.0f))));
}

// tanh(x) = x p(x^2) / q(x^2) on x clamped to +-7.905...
inline Halide::Expr cell_tanh(const Halide::Expr &x) {
    using namespace Halide;
    Expr xc = clamp(x, -7.90531110763549805f, 7.90531110763549805f);
    Expr x2 = xc * xc;
    Expr p = -2.76076847742355e-16f;
    for (float a : {2.00018790482477e-13f, -8.60467152213735e-11f, 5.12229709037114e-08f,
                    1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f})
        p = p * x2 + a;
    Expr q = 1.19825839466702e-06f;
    for (float b : {1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f})
        q = q * x2 + b;
    return select(cell_is_nan(x), x, xc * p / q);
}

// Knobs of the element-wise cell schedules.
struct CellKnobs {
    int vector = 16;         // lanes over hidden units
    int parallel_batch = 0;  // batch items per parallel task; 0 = serial
};

// Vectorized over hidden units (predicated tail: no element is computed twice,
// so an output may be the very buffer of the state it replaces), batch items
// outermost, optionally in parallel.
inline void cell_schedule(Halide::Func out, Halide::Var h, Halide::Var b, const CellKnobs &k) {
    using namespace Halide;
    out.vectorize(h, k.vector, TailStrategy::GuardWithIf);
    if (k.parallel_batch > 0) {
        Var bo("bo"), bi("bi");
        out.split(b, bo, bi, k.parallel_batch, TailStrategy::GuardWithIf).parallel(bo);
    }
}

// The buffer constraints of a fused cell with `gates` gate values per unit
// (LSTM 4, GRU 3), shared by its generator and the tuner: gx and gh hold
// gates x H values per item, prev (c_prev or h_prev) and the outputs H; the
// item strides are free. outs are the output buffers (the generator's Outputs,
// or output_buffer() of the Funcs).
template <typename GBuffer, typename PrevBuffer, typename... Outs>
void constrain_cell_buffers(int gates, GBuffer &gx, GBuffer &gh, PrevBuffer &prev,
                            Outs &&...outs) {
    Halide::Expr H = prev.dim(0).extent(), B = prev.dim(1).extent();
    prev.dim(0).set_min(0).dim(1).set_min(0);
    gx.dim(0).set_bounds(0, gates * H).dim(1).set_bounds(0, B);
    gh.dim(0).set_bounds(0, gates * H).dim(1).set_bounds(0, B);
    (outs.dim(0).set_bounds(0, H).dim(1).set_bounds(0, B), ...);
}

// The estimates the autoschedulers plan with, at H units and B items, shared
// by the generators (est_hidden, est_batch) and the tuner (the problem's shape).
template <typename GBuffer, typename PrevBuffer, typename... Outs>
void set_cell_estimates(int gates, int H, int B, GBuffer &gx, GBuffer &gh, PrevBuffer &prev,
                        Outs &&...outs) {
    gx.set_estimates({{0, gates * H}, {0, B}});
    gh.set_estimates({{0, gates * H}, {0, B}});
    prev.set_estimates({{0, H}, {0, B}});
    (outs.set_estimates({{0, H}, {0, B}}), ...);
}

}  // namespace amq::gen
