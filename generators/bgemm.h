// bgemm: the multi-bit binary matrix product for a batch of activation vectors.
//
//   y(r, t, b) = bias(r, t) + sum_i alpha(r, i, t) sum_j beta(j, b) (n - 2 popcount(W_i ^ A_j(b)))
//
// bgemv (bgemv.h) for B vectors at once: the weights are streamed from memory
// once, not B times. Same weight buffers and layouts as bgemv.
//
// Buffers (Halide dimension order, innermost first):
//   W(r, i, w, t)  u64  weight planes, strides per Layout (see layout.h)
//   alpha(r, i, t) f32  per-row scales, row-tiled, 0 on padding rows
//   bias(r, t)     f32  row-tiled, 0 where the matrix has none
//   A(w, j, b)     u64  activation planes of item b: [B][k_a][words]
//   beta(j, b)     f32  activation scales: [B][k_a]
//   n              i32  true length (columns); padding bits are 0 in W and A
//   batch_tile     items counted together (schedule only: see bgemm_schedule)
//   y(r, t, b)     f32  [B][tiles][tile]: item b's rows, padded to a multiple of tile
#pragma once

#include "amq/batch_tile.h"
#include "binary_count.h"
#include "layout.h"

namespace amq::gen {

struct BgemmKnobs {
    Layout layout = Layout::tiled;
    int tile = 8;            // rows per tile (vector lanes of u64 in the tiled layout)
    int unroll_words = 1;    // unroll of the word loop
    int parallel_tiles = 0;  // tiles per parallel task; 0 = serial
    int accumulators = 24;   // vector accumulators of a batch tile: at most
                             // accumulators / (k_w k_a) items per tile, and at most
    int max_batch_tile = 6;  // this many (one specialization per tile size)
};

struct BgemmFuncs {
    Halide::Func cnt, y;
    Halide::Var r{"r"}, i{"i"}, j{"j"}, b{"b"}, t{"t"};
    Halide::RDom rw;
};

inline BgemmFuncs bgemm_algorithm(Halide::Func W, Halide::Func alpha, Halide::Func bias,
                                  Halide::Func A, Halide::Func beta, Halide::Expr n,
                                  Halide::Expr words, int k_w, int k_a) {
    using namespace Halide;
    BgemmFuncs f;
    f.cnt = Func("cnt");
    f.y = Func("y");
    Var r = f.r, i = f.i, j = f.j, b = f.b, t = f.t;
    f.rw = RDom(0, words, "rw");
    f.cnt(r, i, j, b, t) = binary_count_start(n);
    f.cnt(r, i, j, b, t) += popcount(W(r, i, f.rw, t) ^ A(f.rw, j, b));
    f.y(r, t, b) =
        bias(r, t) + binary_count_sum([&](int ii, int jj) { return f.cnt(r, ii, jj, b, t); },
                                      [&](int ii) { return alpha(r, ii, t); },
                                      [&](int jj) { return beta(jj, b); }, n, k_w, k_a);
    return f;
}

// The buffer constraints of the bgemm kernel, shared by its generator and the
// tuner: everything agrees on tile, planes, words and batch items. y is the
// output buffer (the generator's Output, or f.y.output_buffer()).
template <typename WBuffer, typename AlphaBuffer, typename BiasBuffer, typename ABuffer,
          typename BetaBuffer, typename YBuffer>
void constrain_bgemm_buffers(WBuffer &W, AlphaBuffer &alpha, BiasBuffer &bias, ABuffer &A,
                             BetaBuffer &beta, YBuffer &&y, Layout layout, int tile, int k_w,
                             int k_a) {
    Halide::Expr batch = beta.dim(1).extent();
    constrain_product_weights(W, alpha, bias, layout, tile, k_w, A.dim(0).extent());
    A.dim(0).set_min(0);
    A.dim(1).set_bounds(0, k_a);
    A.dim(2).set_bounds(0, batch);
    beta.dim(0).set_bounds(0, k_a).dim(1).set_min(0);
    y.dim(0).set_bounds(0, tile).dim(1).set_min(0).dim(2).set_bounds(0, batch);
}

// The estimates the autoschedulers plan with, at a product of rows x cols for
// `batch` items split in batch tiles of `batch_tile`, shared by the generator
// (its est_* parameters) and the tuner (the problem's shape).
template <typename WBuffer, typename AlphaBuffer, typename BiasBuffer, typename ABuffer,
          typename BetaBuffer, typename NParam, typename FlagParam, typename TileParam,
          typename YFunc>
void set_bgemm_estimates(WBuffer &W, AlphaBuffer &alpha, BiasBuffer &bias, ABuffer &A,
                         BetaBuffer &beta, NParam &n, FlagParam &parallel_flag,
                         TileParam &batch_tile_param, YFunc &&y, int tile, int k_w, int k_a,
                         int rows, int cols, int batch, int batch_tile, bool parallel) {
    const int tiles = (rows + tile - 1) / tile, words = (cols + 63) / 64;
    W.set_estimates({{0, tile}, {0, k_w}, {0, words}, {0, tiles}});
    alpha.set_estimates({{0, tile}, {0, k_w}, {0, tiles}});
    bias.set_estimates({{0, tile}, {0, tiles}});
    A.set_estimates({{0, words}, {0, k_a}, {0, batch}});
    beta.set_estimates({{0, k_a}, {0, batch}});
    n.set_estimate(cols);
    parallel_flag.set_estimate(parallel);
    batch_tile_param.set_estimate(batch_tile);
    y.set_estimates({{0, tile}, {0, tiles}, {0, batch}});
}

// Row tiles outermost (optionally in parallel when the run-time flag `parallel`
// is set), then batch tiles of `batch_tile` items (a run-time argument, 1 to
// amq::bgemm_max_batch_tile(...), see amq/batch_tile.h; one specialization per
// value, the last tile shifted inwards when it does not divide the batch): the
// words of one row tile (a few KB) are loaded from memory once and stay in L1
// for the other batch tiles; within a batch tile each loaded word meets every
// item, with all counts in registers.
inline void bgemm_schedule(BgemmFuncs &f, const BgemmKnobs &k, int k_w, int k_a,
                           Halide::Expr batch_tile, Halide::Expr parallel) {
    using namespace Halide;
    Var r = f.r, i = f.i, j = f.j, b = f.b, t = f.t;
    Var to("to"), ti("ti"), bo("bo"), bi("bi");
    Func &y = f.y, &cnt = f.cnt;
    const int max_bt = bgemm_max_batch_tile(k.accumulators, k.max_batch_tile, k_w, k_a);
    y.bound(r, 0, k.tile).vectorize(r);
    if (k.parallel_tiles > 0) y.split(t, to, ti, k.parallel_tiles, TailStrategy::GuardWithIf);
    auto batch_variants = [&](Stage s) {
        for (int items = 1; items <= max_bt; ++items) {
            Stage v = s.specialize(batch_tile == items);
            v.split(b, bo, bi, items, TailStrategy::ShiftInwards).unroll(bi);
            if (k.parallel_tiles > 0)
                v.reorder(r, bi, bo, ti, to);
            else
                v.reorder(r, bi, bo, t);
        }
        s.specialize_fail("bgemm: batch_tile is out of range for this kernel");
    };
    if (k.parallel_tiles > 0) {
        Stage par = y.specialize(parallel);
        par.parallel(to);
        batch_variants(par);
    }
    batch_variants(y);
    cnt.compute_at(y, bo).store_in(MemoryType::Register);
    cnt.bound_extent(r, k.tile).bound_extent(i, k_w).bound_extent(j, k_a);
    cnt.bound_extent(b, clamp(batch_tile, 1, max_bt));  // (sizes the storage)
    cnt.vectorize(r).unroll(i).unroll(j).unroll(b);
    auto upd = cnt.update();
    // Rows are contiguous only in the tiled layout; the others vectorize over
    // rows anyway (strided loads), as bgemv does.
    upd.reorder(r, j, i, b, f.rw).vectorize(r).unroll(j).unroll(i).unroll(b);
    if (k.unroll_words > 1) {
        RVar wo("wo"), wi("wi");
        upd.split(f.rw, wo, wi, k.unroll_words, TailStrategy::GuardWithIf).unroll(wi);
    }
}

}  // namespace amq::gen
