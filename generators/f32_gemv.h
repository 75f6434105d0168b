// f32_gemv: the float baseline, y[r] = bias[r] + sum_c M[r][c] x[c].
//
//   M(c, r)  f32  row-major [rows][cols]
//   x(c)     f32
//   bias(r)  f32
//   y(r)     f32
#pragma once

#include "Halide.h"

namespace amq::gen {

struct F32GemvKnobs {
    int vector = 16;        // lanes of the partial sums over columns
    int rows_unroll = 4;    // rows computed together (reuse of x)
    int parallel_rows = 0;  // rows per parallel task; 0 = serial
};

struct F32GemvFuncs {
    Halide::Func y, dot;
    Halide::Var r{"r"}, u{"u"};
    Halide::RDom rc, tail;
};

inline F32GemvFuncs f32_gemv_algorithm(Halide::Func M, Halide::Func x, Halide::Func bias,
                                       Halide::Expr cols, int vector) {
    using namespace Halide;
    F32GemvFuncs f;
    // Full blocks of `vector` columns as [blocks][lanes] (dense loads, lanes
    // vectorized), then one masked block for the last cols % vector columns
    // (never an empty domain: Adams2019 fails on those).
    Expr blocks = cols / vector;
    f.rc = RDom(0, vector, 0, blocks, "rc");
    f.tail = RDom(0, vector, "tail");
    Expr ct = blocks * vector + f.tail.x, ctc = min(ct, cols - 1);
    Expr c = f.rc.y * vector + f.rc.x;
    f.dot = Func("dot");
    f.dot(f.u, f.r) = 0.0f;
    f.dot(f.rc.x, f.r) += M(c, f.r) * x(c);
    f.dot(0, f.r) += select(ct < cols, M(ctc, f.r) * x(ctc), 0.0f);
    f.y = Func("y");
    Expr s = 0.0f;
    for (int l = 0; l < vector; ++l) s = s + f.dot(l, f.r);
    f.y(f.r) = bias(f.r) + s;
    return f;
}

// The buffer constraints of the f32_gemv kernel, shared by its generator and
// the tuner: x has the matrix's columns. y is the output buffer (the
// generator's Output, or f.y.output_buffer()).
template <typename MBuffer, typename XBuffer, typename BiasBuffer, typename YBuffer>
void constrain_f32_gemv_buffers(MBuffer &M, XBuffer &x, BiasBuffer &bias, YBuffer &&y) {
    M.dim(0).set_min(0).dim(1).set_min(0);
    x.dim(0).set_bounds(0, M.dim(0).extent());
    bias.dim(0).set_min(0);
    y.dim(0).set_min(0);
}

// The estimates the autoschedulers plan with, at rows x cols, shared by the
// generator (est_rows, est_cols) and the tuner (the problem's shape).
template <typename MBuffer, typename XBuffer, typename BiasBuffer, typename FlagParam,
          typename YFunc>
void set_f32_gemv_estimates(MBuffer &M, XBuffer &x, BiasBuffer &bias, FlagParam &parallel_flag,
                            YFunc &&y, int rows, int cols, bool parallel) {
    M.set_estimates({{0, cols}, {0, rows}});
    x.set_estimates({{0, cols}});
    bias.set_estimates({{0, rows}});
    y.set_estimates({{0, rows}});
    parallel_flag.set_estimate(parallel);
}

// `parallel` (a run-time flag) picks the parallel variant, as for bgemv.
inline void f32_gemv_schedule(F32GemvFuncs &f, const F32GemvKnobs &k, Halide::Expr parallel) {
    using namespace Halide;
    Var ro("ro"), ri("ri");
    Var rp("rp");
    if (k.parallel_rows > 0) f.y.split(f.r, rp, f.r, k.parallel_rows, TailStrategy::GuardWithIf);
    f.y.split(f.r, ro, ri, k.rows_unroll, TailStrategy::GuardWithIf);
    // Every split before specialize(): the parallel branch copies the schedule.
    if (k.parallel_rows > 0) f.y.specialize(parallel).parallel(rp);
    f.dot.compute_at(f.y, ro).vectorize(f.u).unroll(f.r);
    f.dot.update(0).reorder(f.rc.x, f.r, f.rc.y).vectorize(f.rc.x).unroll(f.r);
    f.dot.update(1).reorder(f.r, f.tail.x).unroll(f.r);
}

}  // namespace amq::gen
