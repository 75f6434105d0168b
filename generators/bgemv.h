// bgemv: the multi-bit binary matrix-vector product.
//
//   y(r, t) = bias(r, t) + sum_i alpha(r, i, t) sum_j beta(j) (n - 2 popcount(W_i ^ A_j))
//
// Algorithm and schedule are plain functions so that the generator
// (bgemv_generator.cpp) and the autotuner (autotune/) compile the same code.
//
// Buffers (Halide dimension order, innermost first):
//   W(r, i, w, t)  u64  weight planes, strides per Layout (see layout.h)
//   alpha(r, i, t) f32  per-row scales, row-tiled, 0 on padding rows
//   bias(r, t)     f32  row-tiled, 0 where the matrix has none
//   A(w, j)        u64  activation planes [k_a][words]
//   beta(j)        f32  activation scales
//   n              i32  true length (columns); padding bits are 0 in W and A
//   y(r, t)        f32  row-tiled output, rows padded to a multiple of tile
#pragma once

#include "binary_count.h"
#include "layout.h"

namespace amq::gen {

struct BgemvKnobs {
    Layout layout = Layout::tiled;
    int tile = 8;            // rows per tile (vector lanes of u64 in the tiled layout)
    int unroll_words = 1;    // unroll of the word loop
    int parallel_tiles = 0;  // tiles per parallel task; 0 = serial
};

struct BgemvFuncs {
    Halide::Func cnt, y;
    Halide::Var r{"r"}, i{"i"}, j{"j"}, t{"t"};
    Halide::RDom rw;
};

// prefix: put before every Func's name (a pipeline with two products).
inline BgemvFuncs bgemv_algorithm(Halide::Func W, Halide::Func alpha, Halide::Func bias,
                                  Halide::Func A, Halide::Func beta, Halide::Expr n,
                                  Halide::Expr words, int k_w, int k_a,
                                  const std::string &prefix = "") {
    using namespace Halide;
    BgemvFuncs f;
    f.cnt = Func(prefix + "cnt");
    f.y = Func(prefix + "y");
    Var r = f.r, i = f.i, j = f.j, t = f.t;
    f.rw = RDom(0, words, prefix + "rw");
    f.cnt(r, i, j, t) = binary_count_start(n);
    f.cnt(r, i, j, t) += popcount(W(r, i, f.rw, t) ^ A(f.rw, j));
    f.y(r, t) = bias(r, t) + binary_count_sum([&](int ii, int jj) { return f.cnt(r, ii, jj, t); },
                                              [&](int ii) { return alpha(r, ii, t); },
                                              [&](int jj) { return beta(jj); }, n, k_w, k_a);
    return f;
}

// The buffer constraints of the bgemv kernel, shared by its generator and the
// tuner: everything agrees on tile, planes and words. y is the output buffer
// (the generator's Output, or f.y.output_buffer()).
template <typename WBuffer, typename AlphaBuffer, typename BiasBuffer, typename ABuffer,
          typename BetaBuffer, typename YBuffer>
void constrain_bgemv_buffers(WBuffer &W, AlphaBuffer &alpha, BiasBuffer &bias, ABuffer &A,
                             BetaBuffer &beta, YBuffer &&y, Layout layout, int tile, int k_w,
                             int k_a) {
    constrain_product_weights(W, alpha, bias, layout, tile, k_w, A.dim(0).extent());
    A.dim(0).set_min(0);
    A.dim(1).set_bounds(0, k_a);
    beta.dim(0).set_bounds(0, k_a);
    y.dim(0).set_bounds(0, tile).dim(1).set_min(0);
}

// The estimates the autoschedulers plan with, at a product of rows x cols,
// shared by the generator (its est_rows, est_cols) and the tuner (the problem's
// shape). `parallel` is the estimate of the run-time flag.
template <typename WBuffer, typename AlphaBuffer, typename BiasBuffer, typename ABuffer,
          typename BetaBuffer, typename NParam, typename FlagParam, typename YFunc>
void set_bgemv_estimates(WBuffer &W, AlphaBuffer &alpha, BiasBuffer &bias, ABuffer &A,
                         BetaBuffer &beta, NParam &n, FlagParam &parallel_flag, YFunc &&y,
                         int tile, int k_w, int k_a, int rows, int cols, bool parallel) {
    const int tiles = (rows + tile - 1) / tile, words = (cols + 63) / 64;
    W.set_estimates({{0, tile}, {0, k_w}, {0, words}, {0, tiles}});
    alpha.set_estimates({{0, tile}, {0, k_w}, {0, tiles}});
    bias.set_estimates({{0, tile}, {0, tiles}});
    A.set_estimates({{0, words}, {0, k_a}});
    beta.set_estimates({{0, k_a}});
    n.set_estimate(cols);
    parallel_flag.set_estimate(parallel);
    y.set_estimates({{0, tile}, {0, tiles}});
}

// The hand schedule and its knobs. Measured on AMD Zen 5 (one thread, AVX-512
// with vpopcntq): tiled, tile 8, 4096x1024 W2A2 -- see docs/PERFORMANCE.md.
// `parallel` (a run-time flag) picks the parallel variant: with one thread the
// serial loop avoids the thread pool's overhead.
inline void bgemv_schedule(BgemvFuncs &f, const BgemvKnobs &k, int k_w, int k_a,
                           Halide::Expr parallel) {
    using namespace Halide;
    Var r = f.r, i = f.i, j = f.j, t = f.t;
    Var to("to"), ti("ti");
    Func &y = f.y, &cnt = f.cnt;
    y.bound(r, 0, k.tile).vectorize(r);
    LoopLevel at;
    if (k.parallel_tiles > 0) {
        y.split(t, to, ti, k.parallel_tiles, TailStrategy::GuardWithIf);
        y.specialize(parallel).parallel(to);
        at = LoopLevel(y, ti);
    } else {
        at = LoopLevel(y, t);
    }
    cnt.compute_at(at).store_in(MemoryType::Register);
    cnt.bound_extent(r, k.tile).bound_extent(i, k_w).bound_extent(j, k_a);
    cnt.vectorize(r).unroll(i).unroll(j);
    // Vectorized over the rows of a tile in every layout: in plane_major and
    // interleaved they are not contiguous (strided loads); the tuner measures
    // how much that costs against the tiled layout.
    auto upd = cnt.update();
    upd.reorder(r, j, i, f.rw).vectorize(r).unroll(i).unroll(j);
    if (k.unroll_words > 1) {
        RVar wo("wo"), wi("wi");
        upd.split(f.rw, wo, wi, k.unroll_words, TailStrategy::GuardWithIf).unroll(wi);
    }
}

}  // namespace amq::gen
