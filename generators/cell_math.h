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

}  // namespace amq::gen
