// Element-wise math shared by the fused cell pipelines (lstm_cell, gru_cell).
//
// Halide's f32 exp is vectorizable and accurate to the last bit of the mantissa;
// its tanh is a scalar libm call, so tanh is built from exp. exp overflows to
// +inf and underflows to 0 as it should for |x| up to about 1e9, but past that
// its range reduction overflows an int32 and it returns garbage (0 for 1e30),
// so its argument is clamped to [-100, 100], where both functions have long
// reached their limits (sigmoid 0 or 1, tanh -1 or +1) in f32. The quotients
// then saturate cleanly, never NaN for finite inputs; NaN stays NaN.
// Absolute error against double: about 1e-7.
#pragma once

#include "Halide.h"

namespace amq::gen {

// e^x for x in [-100, 100], else e^(+-100). (Halide's exp gives 0 for NaN: the
// callers pass NaN on by themselves.)
inline Halide::Expr cell_exp(const Halide::Expr &x) {
    return Halide::exp(Halide::clamp(x, -100.0f, 100.0f));
}

// x is NaN, tested on the bits (the code is compiled with fast-math flags under
// which a float comparison may be assumed never to see NaN).
inline Halide::Expr cell_is_nan(const Halide::Expr &x) {
    using namespace Halide;
    return (reinterpret<uint32_t>(x) & Expr(0x7fffffffu)) > Expr(0x7f800000u);
}

// 1 / (1 + e^-x)
inline Halide::Expr cell_sigmoid(const Halide::Expr &x) {
    return Halide::select(cell_is_nan(x), x, 1.0f / (1.0f + cell_exp(-x)));
}

// 1 - 2 / (1 + e^2x)
inline Halide::Expr cell_tanh(const Halide::Expr &x) {
    return Halide::select(cell_is_nan(x), x, 1.0f - 2.0f / (1.0f + cell_exp(2.0f * x)));
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
