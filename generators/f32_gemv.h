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
    int vector = 16;        // lanes of one partial sum over columns
    int accumulators = 1;   // partial sums per row (independent add chains)
    int rows_unroll = 4;    // rows computed together (reuse of x)
    int parallel_rows = 0;  // rows per parallel task; 0 = serial
};

struct F32GemvFuncs {
    Halide::Func y, sum, dot;
    Halide::Var r{"r"}, u{"u"};
    Halide::RDom rc, tail, lanes;
    Halide::Expr cols;
    int block = 0;  // columns per block: vector x accumulators
};

inline F32GemvFuncs f32_gemv_algorithm(Halide::Func M, Halide::Func x, Halide::Func bias,
                                       Halide::Expr cols, int vector, int accumulators) {
    using namespace Halide;
    F32GemvFuncs f;
    f.cols = cols;
    f.block = vector * accumulators;
    const int b = f.block;
    // Partial sums dot(u, r), u < block: the full blocks of `block` columns as
    // [blocks][lanes], then one window of `block` columns ending at the last
    // column with its lanes before column blocks * block masked (those are
    // summed already): dense loads, no serial tail. When cols < block the
    // window starts at column 0 and its lanes past the last column are masked
    // too. Never an empty domain (Adams2019 fails on those).
    Expr blocks = cols / b;
    f.rc = RDom(0, b, 0, blocks, "rc");
    f.tail = RDom(0, b, "tail");
    Expr ct = max(cols - b, 0) + f.tail.x, ctc = min(ct, cols - 1);
    Expr c = f.rc.y * b + f.rc.x;
    f.dot = Func("dot");
    f.dot(f.u, f.r) = 0.0f;
    f.dot(f.rc.x, f.r) += M(c, f.r) * x(c);
    f.dot(f.tail.x, f.r) += select(ct >= blocks * b && ct < cols, M(ctc, f.r) * x(ctc), 0.0f);
    // The sum of the partial sums, then the bias.
    f.lanes = RDom(0, b, "lanes");
    f.sum = Func("sum");
    f.sum(f.r) = 0.0f;
    f.sum(f.r) += f.dot(f.lanes, f.r);
    f.y = Func("y");
    f.y(f.r) = bias(f.r) + f.sum(f.r);
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
    // Every split before specialize(): each branch copies the schedule. With
    // cols >= block the tail window's columns are a dense ramp (else clamped,
    // a gather), in the serial and the parallel branch.
    Stage wide = f.y.specialize(f.cols >= f.block);
    if (k.parallel_rows > 0) {
        wide.specialize(parallel).parallel(rp);
        f.y.specialize(parallel).parallel(rp);
    }
    // Partial sums in registers: constant-size stack buffers (compute_at with
    // a guarded split would size them at run time, on the heap) whose every
    // index is constant after unrolling.
    f.dot.compute_at(f.y, ro).store_in(MemoryType::Stack).vectorize(f.u).unroll(f.r);
    f.dot.update(0).reorder(f.rc.x, f.r, f.rc.y).vectorize(f.rc.x).unroll(f.r);
    f.dot.update(1).reorder(f.tail.x, f.r).vectorize(f.tail.x).unroll(f.r);
    // The sum over the lanes as one vector reduction per row (a shuffle tree).
    f.sum.compute_at(f.y, ro).store_in(MemoryType::Stack).unroll(f.r);
    f.sum.update(0).atomic().vectorize(f.lanes).unroll(f.r);
}

}  // namespace amq::gen
