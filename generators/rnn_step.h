// rnn_step: one recurrent step of a quantized LSTM or GRU layer in one
// pipeline, the stages the runner otherwise calls as three kernels:
//
//   gh   = W_hh h_{t-1} + b_hh       the binary product on the planes of h_{t-1}
//   cell = lstm | gru                 on gx (W_ih x_t + b_ih, precomputed) and gh
//   h_t, (c_t)                        the new state
//   planes, beta = quantize(h_t)      the planes of h_t for the next step's product
//
// One sequence (lstm_step, gru_step): the product is bgemv's (bgemv.h) on a flat
// row index e (gate q of unit u is row q H + u), the tile lanes vectorized as
// there. A batch of B sequences (lstm_step_batch, gru_step_batch): the product
// is bgemm's (bgemm.h: the weights streamed once for all B items, in batch
// tiles), the cell and the quantizer per item, every per-item buffer with the
// item b as its outermost dimension. The cell is lstm_cell.h's / gru_cell.h's
// math (cell_math.h); the quantizer is quantize_act.h's (batched as the
// quantize_act_batch kernels), reading h_t back from the h output, so the planes
// are those the quantize_act kernel with the same k_a and T gives
// (ref::alternating's codes).
//
// Buffers (Halide dimension order, innermost first; b only when batched):
//   W, alpha, bias  the recurrent weights in the kernel layout (as bgemv)
//   A(w, j, b), beta(j, b)  planes [B][k_a][words] and scales of h_{t-1};
//                words = ceil(H / 64)
//   gx(e, b)     f32  W_ih x_t + b_ih, e in [0, G H) (more is allowed: padded rows)
//   prev(u, b)   f32  LSTM: c_{t-1}; GRU: h_{t-1}. [B][H]; c (h) may be written over it
//   H            i32  hidden size
//   batch_tile   i32  batched only: items counted together, as bgemm's
//   h(u, b)      f32  h_t [B][H]
//   c(u, b)      f32  LSTM only: c_t [B][H]
//   planes(q, j, b) u8  the planes of h_t as bytes (quantize_act.h's `bytes`); must
//                     not be A's memory (A is read by the product while they are written)
//   scales(j, b) f32  their scales
#pragma once

#include <type_traits>

#include "amq/batch_tile.h"
#include "bgemm.h"
#include "bgemv.h"
#include "cell_math.h"
#include "generator_aliases.h"
#include "quantize_act.h"

namespace amq::gen {

struct RnnStepKnobs {
    int unroll_words = 1;  // the product's word loop (as bgemv)
    int vector = 16;       // lanes of the cell over hidden units
    QuantizeActKnobs quantize;
    // Batched only: bgemm's (the runtime picks the batch tile from the same values).
    int accumulators = 24;
    int max_batch_tile = 6;
};

inline std::string rnn_step_knobs_error(const RnnStepKnobs &k) {
    if (k.unroll_words < 1 || k.unroll_words > 16)
        return "unroll_words = " + std::to_string(k.unroll_words) + " (expected 1..16)";
    if (k.vector < 1 || k.vector > 64)
        return "vector = " + std::to_string(k.vector) + " (expected 1..64)";
    return quantize_act_knobs_error(k.quantize);
}

struct RnnStepFuncs {
    Halide::Func cnt, gh_tiled;  // the product, bgemv's (r, t) form (bgemm's y when batched)
    BgemmFuncs batch_product;    // batched: the product as bgemm's
    Halide::Func gh;             // the same by flat row
    Halide::Func h_cell, c_cell;  // the cell on whole vectors (c: LSTM only)
    Halide::Func h, c;            // the outputs: copies of the first H values
    Halide::Func h_read;          // h_t as the quantizer reads it (clamped to [0, H))
    QuantizeActFuncs q;
    Halide::Var e{"e"}, i{"i"}, j{"j"}, u{"u"}, r{"r"}, t{"t"};
    Halide::RDom rw;
    Halide::Expr H, tiles;
    bool batched = false;
    // A Func's arguments: `v`, then the item when batched (q.b, the quantizer's).
    std::vector<Halide::Var> vars(std::vector<Halide::Var> v) const {
        if (batched) v.push_back(item);
        return v;
    }
    std::vector<Halide::Expr> at(std::vector<Halide::Expr> v) const {
        if (batched) v.push_back(item);
        return v;
    }
    Halide::Var item{"b"};  // the same Var as the quantizer's (by name)
};

// lstm: the LSTM cell (gates i, f, g, o), else the GRU cell (r, z, n; the
// recurrent product of n includes b_hn, multiplied by r as in PyTorch).
// batched: A, beta, gx and prev take the item as their last argument.
inline RnnStepFuncs rnn_step_algorithm(bool lstm, Halide::Func W, Halide::Func alpha,
                                       Halide::Func bias, Halide::Func A, Halide::Func beta,
                                       Halide::Func gx, Halide::Func prev, Halide::Expr H,
                                       Halide::Expr words, int tile, int k_w, int k_a, int iters,
                                       int lanes, bool hand_schedule = true,
                                       bool batched = false) {
    using namespace Halide;
    RnnStepFuncs f;
    f.H = H;
    f.batched = batched;
    Var e = f.e, i = f.i, j = f.j, u = f.u;
    // The product in bgemv's (row in tile, tile) form, so that the tile lanes
    // are dense loads; the cell reads it by flat row e = t * tile + r.
    Var r = f.r, t = f.t;
    if (batched) {
        f.batch_product = bgemm_algorithm(W, alpha, bias, A, beta, H, words, k_w, k_a);
        f.gh_tiled = f.batch_product.y;  // (r, t, b)
        f.rw = f.batch_product.rw;
    } else {
        f.rw = RDom(0, words, "rw");
        f.cnt = Func("cnt");
        f.cnt(r, i, j, t) = binary_count_start(H);
        f.cnt(r, i, j, t) += popcount(W(r, i, f.rw, t) ^ A(f.rw, j));
        f.gh_tiled = Func("gh_tiled");
        f.gh_tiled(r, t) =
            bias(r, t) + binary_count_sum([&](int ii, int jj) { return f.cnt(r, ii, jj, t); },
                                          [&](int ii) { return alpha(r, ii, t); },
                                          [&](int jj) { return beta(jj); }, H, k_w, k_a);
    }
    f.tiles = ((lstm ? 4 : 3) * H + tile - 1) / tile;
    f.gh = Func("gh");
    f.gh(f.vars({e})) = f.gh_tiled(f.at({e % tile, e / tile}));

    // The cell on whole vectors of units: past H (the last vector) it reads unit
    // H - 1 again (clamped; `likely` keeps the clamp out of the other vectors).
    Expr uc = clamp(likely(u), 0, H - 1);
    auto gate_x = [&](int q) { return gx(f.at({q * H + uc})); };
    auto gate_h = [&](int q) { return f.gh(f.at({q * H + uc})); };
    Expr prev_u = prev(f.at({uc}));
    f.h_cell = Func("h_cell");
    if (lstm) {
        auto pre = [&](int q) { return gate_x(q) + gate_h(q); };
        f.c_cell = Func("c_cell");
        f.c_cell(f.vars({u})) =
            cell_sigmoid(pre(1)) * prev_u + cell_sigmoid(pre(0)) * cell_tanh(pre(2));
        f.h_cell(f.vars({u})) = cell_sigmoid(pre(3)) * cell_tanh(f.c_cell(f.at({u})));
        f.c = Func("c");
        f.c(f.vars({u})) = f.c_cell(f.at({u}));
    } else {
        Expr rg = cell_sigmoid(gate_x(0) + gate_h(0));
        Expr z = cell_sigmoid(gate_x(1) + gate_h(1));
        Expr n = cell_tanh(gate_x(2) + rg * gate_h(2));
        f.h_cell(f.vars({u})) = (1.0f - z) * n + z * prev_u;
    }
    f.h = Func("h");
    f.h(f.vars({u})) = f.h_cell(f.at({u}));
    // The quantizer reads whole blocks and words (its padding is not counted).
    f.h_read = Func("h_read");
    f.h_read(f.vars({e})) = f.h_cell(f.at({clamp(likely(e), 0, H - 1)}));
    f.q = quantize_act_algorithm(f.h_read, H, k_a, iters, lanes, hand_schedule, batched);
    return f;
}

// The product as bgemv's schedule on whole tiles of rows (batched: bgemm's, in
// batch tiles of `batch_tile` items), computed first; the cell vectorized over
// whole vectors of units into scratch (so that c may overwrite c_{t-1}: the
// cell has read all of it before c is written), then copied to the outputs (the
// last vector shifted inwards: no masked load or store on the caller's buffers,
// whose alignment Halide 14's masked accesses would assume); the quantizer as
// quantize_act's (batched: as quantize_act_batch's).
inline void rnn_step_schedule(RnnStepFuncs &f, const RnnStepKnobs &k, int tile, int k_w,
                              int k_a, Halide::Expr batch_tile = Halide::Expr()) {
    using namespace Halide;
    Var r = f.r, t = f.t;
    // The scratch of the product and the cell on the stack (Halide's pseudostack:
    // the heap past 16 KB), not a heap allocation per step.
    f.gh_tiled.compute_root().store_in(MemoryType::Stack);
    if (f.batched) {
        f.gh_tiled.bound(t, 0, f.tiles);
        BgemmKnobs bk;
        bk.tile = tile;
        bk.unroll_words = k.unroll_words;
        bk.accumulators = k.accumulators;
        bk.max_batch_tile = k.max_batch_tile;
        bgemm_schedule(f.batch_product, bk, k_w, k_a, batch_tile, Expr(false));
    } else {
        f.gh_tiled.bound(r, 0, tile).bound(t, 0, f.tiles).vectorize(r);
        f.cnt.compute_at(f.gh_tiled, t).store_in(MemoryType::Register);
        f.cnt.bound_extent(r, tile).bound_extent(f.i, k_w).bound_extent(f.j, k_a);
        f.cnt.vectorize(r).unroll(f.i).unroll(f.j);
        auto upd = f.cnt.update();
        RVar rw = f.rw.x;
        upd.reorder(r, f.j, f.i, rw).vectorize(r).unroll(f.i).unroll(f.j);
        if (k.unroll_words > 1) {
            RVar wo("wo"), wi("wi");
            upd.split(rw, wo, wi, k.unroll_words, TailStrategy::GuardWithIf).unroll(wi);
        }
    }
    Expr H = f.H;
    for (Func cell : {f.c_cell, f.h_cell})
        if (cell.defined())
            cell.compute_root()
                .store_in(MemoryType::Stack)
                .vectorize(f.u, k.vector, TailStrategy::RoundUp);
    for (Func out : {f.c, f.h})
        if (out.defined())
            out.specialize(H >= k.vector).vectorize(f.u, k.vector, TailStrategy::ShiftInwards);
    quantize_act_schedule(f.q, k.quantize);
}

}  // namespace amq::gen

namespace amq::gen {

// Stands in for an Input the unbatched generators do not have.
struct NoInput {
    template <typename... Args>
    explicit NoInput(Args &&...) {}
};

// The generator of lstm_step_w<k_w>a<k_a>_t<iters>, gru_step_... and their
// batched forms lstm_step_batch_..., gru_step_batch_...: the inputs, outputs,
// constraints and estimates all share (lstm_step_generator.cpp and
// gru_step_generator.cpp each register one arch, batched and not). kBatch: every
// per-item buffer has the item as its last dimension, and the kernel takes
// bgemm's batch_tile.
template <typename Self, bool kLstm, bool kBatch>
class RnnStepGeneratorBase : public Halide::Generator<Self> {
public:
    static constexpr int kItems = kBatch ? 1 : 0;

    GeneratorParam<int> k_w{"k_w", 2, 1, 4};
    GeneratorParam<int> k_a{"k_a", 2, 1, 4};
    GeneratorParam<int> iters{"iters", 2, 0, 8};
    GeneratorParam<std::string> layout{"layout", "tiled"};
    GeneratorParam<int> tile{"tile", 8, 1, 64};
    GeneratorParam<int> unroll_words{"unroll_words", 1, 1, 16};
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> lanes{"lanes", 16, 1, 64};
    GeneratorParam<int> pack_vector{"pack_vector", 8, 8, 64};
    GeneratorParam<int> accumulators{"accumulators", 24, 1, 256};  // batched: bgemm's
    GeneratorParam<int> max_batch_tile{"max_batch_tile", 6, 1, 16};  // batched: bgemm's
    GeneratorParam<int> est_hidden{"est_hidden", 256};  // estimates only
    GeneratorParam<int> est_batch{"est_batch", 8};      // estimates only (batched)

    Input<Buffer<uint64_t, 4>> W{"W"};
    Input<Buffer<float, 3>> alpha{"alpha"};
    Input<Buffer<float, 2>> bias{"bias"};
    // Not "beta": quantize_act.h names a Func so (Halide names must be unique).
    Input<Buffer<uint64_t, 2 + kItems>> A{"h_planes"};
    Input<Buffer<float, 1 + kItems>> beta{"h_scales"};
    Input<Buffer<float, 1 + kItems>> gx{"gx"};
    Input<Buffer<float, 1 + kItems>> prev{"prev"};
    Input<int32_t> hidden{"hidden", 1, 1, 1 << 24};
    // Batched: items per batch tile, 1 .. amq::bgemm_max_batch_tile(accumulators,
    // max_batch_tile, k_w, k_a), at most the batch: amq::bgemm_batch_tile().
    std::conditional_t<kBatch, Input<int32_t>, NoInput> batch_tile{"batch_tile", 1, 1, 64};

    // Declares the step on the inputs and constrains them; the subclass binds
    // the outputs, then calls finish().
    RnnStepFuncs declare() {
        RnnStepKnobs kn;
        kn.unroll_words = unroll_words;
        kn.vector = vector;
        kn.quantize.lanes = lanes;
        kn.quantize.pack_vector = pack_vector;
        kn.accumulators = accumulators;
        kn.max_batch_tile = max_batch_tile;
        const std::string bad = rnn_step_knobs_error(kn);
        if (!bad.empty()) throw std::invalid_argument("rnn_step generator: " + bad);
        const Layout lay = parse_layout(layout);
        if (lay != Layout::tiled)
            throw std::invalid_argument("rnn_step generator: layout " + std::string(layout) +
                                        " (the fused step is built for the tiled layout only)");
        Halide::Expr H = hidden, words = (H + 63) / 64;
        RnnStepFuncs f =
            rnn_step_algorithm(kLstm, W, alpha, bias, A, beta, gx, prev, H, words, tile, k_w,
                               k_a, iters, lanes, !this->auto_schedule, kBatch);
        constrain_product_weights(W, alpha, bias, lay, tile, k_w, words);
        A.dim(0).set_bounds(0, words);
        A.dim(1).set_bounds(0, k_a);
        beta.dim(0).set_bounds(0, k_a);
        gx.dim(0).set_min(0);
        prev.dim(0).set_bounds(0, H);
        if constexpr (kBatch) {
            A.dim(2).set_bounds(0, batch());
            beta.dim(1).set_bounds(0, batch());
            gx.dim(1).set_bounds(0, batch());
        }
        knobs_ = kn;
        return f;
    }

    template <typename Out1>
    void constrain_state_output(Out1 &o) {
        o.dim(0).set_bounds(0, Halide::Expr(hidden));
        if constexpr (kBatch) {
            o.dim(1).set_bounds(0, batch());
            o.set_estimates({{0, int(est_hidden)}, {0, int(est_batch)}});
        } else {
            o.set_estimates({{0, int(est_hidden)}});
        }
    }

    template <typename Bytes, typename Scales>
    void finish(RnnStepFuncs &f, Bytes &planes, Scales &scales) {
        Halide::Expr H = hidden;
        planes.dim(0).set_bounds(0, ((H + 63) / 64) * 8);
        planes.dim(1).set_bounds(0, int(k_a));
        planes.dim(1).set_stride(planes.dim(0).extent());
        scales.dim(0).set_bounds(0, int(k_a));
        if constexpr (kBatch) {
            planes.dim(2).set_bounds(0, batch());
            scales.dim(1).set_bounds(0, batch());
        }
        const int eh = est_hidden, G = kLstm ? 4 : 3, tiles = (G * eh + tile - 1) / tile,
                  ew = (eh + 63) / 64;
        // The per-item estimates, with the items last when batched.
        auto items = [&](Halide::Region r) {
            if (kBatch) r.push_back({0, int(est_batch)});
            return r;
        };
        W.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, ew}, {0, tiles}});
        alpha.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, tiles}});
        bias.set_estimates({{0, int(tile)}, {0, tiles}});
        A.set_estimates(items({{0, ew}, {0, int(k_a)}}));
        beta.set_estimates(items({{0, int(k_a)}}));
        gx.set_estimates(items({{0, tiles * int(tile)}}));
        prev.set_estimates(items({{0, eh}}));
        hidden.set_estimate(eh);
        planes.set_estimates(items({{0, ew * 8}, {0, int(k_a)}}));
        scales.set_estimates(items({{0, int(k_a)}}));
        Halide::Expr bt;
        if constexpr (kBatch) {
            const int max_bt = bgemm_max_batch_tile(accumulators, max_batch_tile, k_w, k_a);
            batch_tile.set_estimate(bgemm_batch_tile(est_batch, max_bt));
            bt = batch_tile;
        }
        if (!this->auto_schedule) rnn_step_schedule(f, knobs_, tile, k_w, k_a, bt);
    }

private:
    // The items: the extent of prev's last dimension, which every per-item buffer shares.
    Halide::Expr batch() { return prev.dim(1).extent(); }

    RnnStepKnobs knobs_;
};

}  // namespace amq::gen
