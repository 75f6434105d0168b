// f32_gemv: the float product, y[r] = bias[r] + sum_c M[r][c] x[c], on M packed
// in row panels (amq/float_panels.h):
//
//   Mp(p, c, q)  f32  [panels][cols][panel]: Mp(p, c, q) = M[q panel + p][c],
//                     rows past the last zero; `panel` is a knob the runtime
//                     packs by ("runtime": true in schedules/manifest.json)
//   x(c)         f32
//   bias(r)      f32
//   y(r)         f32
//
// A panel's outputs acc(p, q) take one vector FMA per column: the column
// Mp(., c, q) times x(c) broadcast. No horizontal reduction, no column tail.
#pragma once

#include "Halide.h"

namespace amq::gen {

struct F32GemvKnobs {
    int panel = 16;         // rows per panel (the packed layout)
    int vector = 16;        // lanes of one FMA (divides panel)
    int panels = 2;         // panels computed together: independent FMA chains
    int parallel_rows = 0;  // rows per parallel task (whole groups of panels); 0 = serial
};

struct F32GemvFuncs {
    Halide::Func y, acc;
    Halide::Var r{"r"}, p{"p"}, q{"q"};
    Halide::RDom c;
    int panel = 0;
};

inline F32GemvFuncs f32_gemv_algorithm(Halide::Func Mp, Halide::Func x, Halide::Func bias,
                                       Halide::Expr cols, int panel) {
    using namespace Halide;
    F32GemvFuncs f;
    f.panel = panel;
    f.c = RDom(0, cols, "c");
    f.acc = Func("acc");
    f.acc(f.p, f.q) = 0.0f;
    f.acc(f.p, f.q) += Mp(f.p, f.c, f.q) * x(f.c);
    f.y = Func("y");
    f.y(f.r) = bias(f.r) + f.acc(f.r % panel, f.r / panel);
    return f;
}

// The buffer constraints of the f32_gemv kernel, shared by its generator and
// the tuner: Mp in panels of `panel` rows (64-byte aligned: the runtime's
// packing), x has the matrix's columns. y is the output buffer (the generator's
// Output, or f.y.output_buffer()).
template <typename MBuffer, typename XBuffer, typename BiasBuffer, typename YBuffer>
void constrain_f32_gemv_buffers(MBuffer &Mp, XBuffer &x, BiasBuffer &bias, YBuffer &&y,
                                int panel) {
    Mp.dim(0).set_bounds(0, panel).set_stride(1);
    Mp.dim(1).set_min(0).set_stride(panel);
    Mp.dim(2).set_min(0).set_stride(panel * Mp.dim(1).extent());
    Mp.set_host_alignment(64);
    x.dim(0).set_bounds(0, Mp.dim(1).extent());
    bias.dim(0).set_min(0);
    y.dim(0).set_min(0);
}

// The estimates the autoschedulers plan with, at rows x cols, shared by the
// generator (est_rows, est_cols) and the tuner (the problem's shape).
template <typename MBuffer, typename XBuffer, typename BiasBuffer, typename FlagParam,
          typename YFunc>
void set_f32_gemv_estimates(MBuffer &Mp, XBuffer &x, BiasBuffer &bias, FlagParam &parallel_flag,
                            YFunc &&y, int rows, int cols, int panel, bool parallel) {
    Mp.set_estimates({{0, panel}, {0, cols}, {0, (rows + panel - 1) / panel}});
    x.set_estimates({{0, cols}});
    bias.set_estimates({{0, rows}});
    y.set_estimates({{0, rows}});
    parallel_flag.set_estimate(parallel);
}

// `parallel` (a run-time flag) picks the parallel variant, as for bgemv.
inline void f32_gemv_schedule(F32GemvFuncs &f, const F32GemvKnobs &k, Halide::Expr parallel) {
    using namespace Halide;
    Var q("q"), p("p"), qo("qo"), qi("qi"), task("task");
    // y in groups of `panels` panels; the last panel's rows past the end and
    // the last group's panels past the end are guarded (scalar), once.
    f.y.split(f.r, q, p, f.panel, TailStrategy::GuardWithIf)
        .split(q, qo, qi, k.panels, TailStrategy::GuardWithIf);
    const int group = f.panel * k.panels;
    if (k.parallel_rows > 0)
        f.y.split(qo, task, qo, std::max(1, k.parallel_rows / group), TailStrategy::GuardWithIf);
    f.y.vectorize(p, k.vector).unroll(qi);
    if (k.parallel_rows > 0) f.y.specialize(parallel).parallel(task);
    // The outputs of a group in registers: a constant-size stack buffer whose
    // every index is constant after unrolling; per column, one broadcast of
    // x(c) and panel / vector x panels independent FMAs.
    Var pi("pi"), po("po");
    f.acc.compute_at(f.y, qo).store_in(MemoryType::Stack);
    f.acc.split(f.p, po, pi, k.vector).vectorize(pi).unroll(po).unroll(f.q);
    f.acc.update()
        .split(f.p, po, pi, k.vector)
        .reorder(pi, po, f.q, f.c.x)
        .vectorize(pi)
        .unroll(po)
        .unroll(f.q);
}

}  // namespace amq::gen
