// rnn_step: one recurrent step of a quantized LSTM or GRU layer (batch 1) in one
// pipeline, the stages the runner otherwise calls as three kernels:
//
//   gh   = W_hh h_{t-1} + b_hh       the binary product on the planes of h_{t-1}
//   cell = lstm | gru                 on gx (W_ih x_t + b_ih, precomputed) and gh
//   h_t, (c_t)                        the new state
//   planes, beta = quantize(h_t)      the planes of h_t for the next step's product
//
// The product is bgemv's (bgemv.h) on a flat row index e (gate q of unit u is
// row q H + u), the tile lanes vectorized as there; the cell is lstm_cell.h's /
// gru_cell.h's math (cell_math.h); the quantizer is quantize_act.h's, reading h_t
// back from the h output, so the planes are those the quantize_act kernel with
// the same k_a and T gives (ref::alternating's codes).
//
// Buffers (Halide dimension order, innermost first):
//   W, alpha, bias  the recurrent weights in the kernel layout (as bgemv)
//   A(w, j), beta(j)  planes [k_a][words] and scales of h_{t-1}; words = ceil(H / 64)
//   gx(e)        f32  W_ih x_t + b_ih, e in [0, G H) (more is allowed: padded rows)
//   prev(u)      f32  LSTM: c_{t-1}; GRU: h_{t-1}. [H]; c (h) may be written over it
//   H            i32  hidden size
//   h(u)         f32  h_t [H]
//   c(u)         f32  LSTM only: c_t [H]
//   planes(q, j) u8   the planes of h_t as bytes (quantize_act.h's `bytes`); must not
//                     be A's memory (A is read by the product while they are written)
//   scales(j)    f32  their scales
#pragma once

#include "bgemv.h"
#include "cell_math.h"
#include "generator_aliases.h"
#include "quantize_act.h"

namespace amq::gen {

struct RnnStepKnobs {
    int unroll_words = 1;  // the product's word loop (as bgemv)
    int vector = 16;       // lanes of the cell over hidden units
    QuantizeActKnobs quantize;
};

inline std::string rnn_step_knobs_error(const RnnStepKnobs &k) {
    if (k.unroll_words < 1 || k.unroll_words > 16)
        return "unroll_words = " + std::to_string(k.unroll_words) + " (expected 1..16)";
    if (k.vector < 1 || k.vector > 64)
        return "vector = " + std::to_string(k.vector) + " (expected 1..64)";
    return quantize_act_knobs_error(k.quantize);
}

struct RnnStepFuncs {
    Halide::Func cnt, gh_tiled;  // the product, bgemv's (r, t) form
    Halide::Func gh;             // the same by flat row
    Halide::Func h_cell, c_cell;  // the cell on whole vectors (c: LSTM only)
    Halide::Func h, c;            // the outputs: copies of the first H values
    Halide::Func h_read;          // h_t as the quantizer reads it (clamped to [0, H))
    QuantizeActFuncs q;
    Halide::Var e{"e"}, i{"i"}, j{"j"}, u{"u"}, r{"r"}, t{"t"};
    Halide::RDom rw;
    Halide::Expr H, tiles;
};

// lstm: the LSTM cell (gates i, f, g, o), else the GRU cell (r, z, n; the
// recurrent product of n includes b_hn, multiplied by r as in PyTorch).
inline RnnStepFuncs rnn_step_algorithm(bool lstm, Halide::Func W, Halide::Func alpha,
                                       Halide::Func bias, Halide::Func A, Halide::Func beta,
                                       Halide::Func gx, Halide::Func prev, Halide::Expr H,
                                       Halide::Expr words, int tile, int k_w, int k_a, int iters,
                                       int lanes, bool hand_schedule = true) {
    using namespace Halide;
    RnnStepFuncs f;
    f.H = H;
    Var e = f.e, i = f.i, j = f.j, u = f.u;
    f.rw = RDom(0, words, "rw");
    // The product in bgemv's (row in tile, tile) form, so that the tile lanes
    // are dense loads; the cell reads it by flat row e = t * tile + r.
    Var r = f.r, t = f.t;
    f.cnt = Func("cnt");
    f.cnt(r, i, j, t) = binary_count_start(H);
    f.cnt(r, i, j, t) += popcount(W(r, i, f.rw, t) ^ A(f.rw, j));
    f.gh_tiled = Func("gh_tiled");
    f.gh_tiled(r, t) =
        bias(r, t) + binary_count_sum([&](int ii, int jj) { return f.cnt(r, ii, jj, t); },
                                      [&](int ii) { return alpha(r, ii, t); },
                                      [&](int jj) { return beta(jj); }, H, k_w, k_a);
    f.tiles = ((lstm ? 4 : 3) * H + tile - 1) / tile;
    f.gh = Func("gh");
    f.gh(e) = f.gh_tiled(e % tile, e / tile);

    // The cell on whole vectors of units: past H (the last vector) it reads unit
    // H - 1 again (clamped; `likely` keeps the clamp out of the other vectors).
    Expr uc = clamp(likely(u), 0, H - 1);
    auto gate_x = [&](int q) { return gx(q * H + uc); };
    auto gate_h = [&](int q) { return f.gh(q * H + uc); };
    f.h_cell = Func("h_cell");
    if (lstm) {
        auto pre = [&](int q) { return gate_x(q) + gate_h(q); };
        f.c_cell = Func("c_cell");
        f.c_cell(u) = cell_sigmoid(pre(1)) * prev(uc) + cell_sigmoid(pre(0)) * cell_tanh(pre(2));
        f.h_cell(u) = cell_sigmoid(pre(3)) * cell_tanh(f.c_cell(u));
        f.c = Func("c");
        f.c(u) = f.c_cell(u);
    } else {
        Expr rg = cell_sigmoid(gate_x(0) + gate_h(0));
        Expr z = cell_sigmoid(gate_x(1) + gate_h(1));
        Expr n = cell_tanh(gate_x(2) + rg * gate_h(2));
        f.h_cell(u) = (1.0f - z) * n + z * prev(uc);
    }
    f.h = Func("h");
    f.h(u) = f.h_cell(u);
    // The quantizer reads whole blocks and words (its padding is not counted).
    f.h_read = Func("h_read");
    f.h_read(e) = f.h_cell(clamp(likely(e), 0, H - 1));
    f.q = quantize_act_algorithm(f.h_read, H, k_a, iters, lanes, hand_schedule);
    return f;
}

// The product as bgemv's schedule on whole tiles of rows, computed first; the
// cell vectorized over whole vectors of units into scratch (so that c may
// overwrite c_{t-1}: the cell has read all of it before c is written), then
// copied to the outputs (the last vector shifted inwards: no masked load or
// store on the caller's buffers, whose alignment Halide 14's masked accesses
// would assume); the quantizer as quantize_act's.
inline void rnn_step_schedule(RnnStepFuncs &f, const RnnStepKnobs &k, int tile, int k_w,
                              int k_a) {
    using namespace Halide;
    Var r = f.r, t = f.t;
    // The scratch of the product and the cell on the stack (Halide's pseudostack:
    // the heap past 16 KB), not a heap allocation per step.
    f.gh_tiled.compute_root().store_in(MemoryType::Stack);
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

// The generator of lstm_step_w<k_w>a<k_a>_t<iters> and gru_step_...: the inputs,
// outputs, constraints and estimates both share (lstm_step_generator.cpp and
// gru_step_generator.cpp each register one arch).
template <typename Self, bool kLstm>
class RnnStepGeneratorBase : public Halide::Generator<Self> {
public:
    GeneratorParam<int> k_w{"k_w", 2, 1, 4};
    GeneratorParam<int> k_a{"k_a", 2, 1, 4};
    GeneratorParam<int> iters{"iters", 2, 0, 8};
    GeneratorParam<std::string> layout{"layout", "tiled"};
    GeneratorParam<int> tile{"tile", 8, 1, 64};
    GeneratorParam<int> unroll_words{"unroll_words", 1, 1, 16};
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> lanes{"lanes", 16, 1, 64};
    GeneratorParam<int> pack_vector{"pack_vector", 8, 8, 64};
    GeneratorParam<int> est_hidden{"est_hidden", 256};  // estimates only

    Input<Buffer<uint64_t, 4>> W{"W"};
    Input<Buffer<float, 3>> alpha{"alpha"};
    Input<Buffer<float, 2>> bias{"bias"};
    // Not "beta": quantize_act.h names a Func so (Halide names must be unique).
    Input<Buffer<uint64_t, 2>> A{"h_planes"};
    Input<Buffer<float, 1>> beta{"h_scales"};
    Input<Buffer<float, 1>> gx{"gx"};
    Input<Buffer<float, 1>> prev{"prev"};
    Input<int32_t> hidden{"hidden", 1, 1, 1 << 24};

    // Declares the step on the inputs and constrains them; the subclass binds
    // the outputs, then calls finish().
    RnnStepFuncs declare() {
        RnnStepKnobs kn;
        kn.unroll_words = unroll_words;
        kn.vector = vector;
        kn.quantize.lanes = lanes;
        kn.quantize.pack_vector = pack_vector;
        const std::string bad = rnn_step_knobs_error(kn);
        if (!bad.empty()) throw std::invalid_argument("rnn_step generator: " + bad);
        const Layout lay = parse_layout(layout);
        if (lay != Layout::tiled)
            throw std::invalid_argument("rnn_step generator: layout " + std::string(layout) +
                                        " (the fused step is built for the tiled layout only)");
        Halide::Expr H = hidden, words = (H + 63) / 64;
        RnnStepFuncs f = rnn_step_algorithm(kLstm, W, alpha, bias, A, beta, gx, prev, H, words,
                                            tile, k_w, k_a, iters, lanes, !this->auto_schedule);
        constrain_product_weights(W, alpha, bias, lay, tile, k_w, words);
        A.dim(0).set_bounds(0, words);
        A.dim(1).set_bounds(0, k_a);
        beta.dim(0).set_bounds(0, k_a);
        gx.dim(0).set_min(0);
        prev.dim(0).set_bounds(0, H);
        knobs_ = kn;
        return f;
    }

    template <typename Out1>
    void constrain_state_output(Out1 &o) {
        o.dim(0).set_bounds(0, Halide::Expr(hidden));
        o.set_estimates({{0, int(est_hidden)}});
    }

    template <typename Bytes, typename Scales>
    void finish(RnnStepFuncs &f, Bytes &planes, Scales &scales) {
        Halide::Expr H = hidden;
        planes.dim(0).set_bounds(0, ((H + 63) / 64) * 8);
        planes.dim(1).set_bounds(0, int(k_a));
        planes.dim(1).set_stride(planes.dim(0).extent());
        scales.dim(0).set_bounds(0, int(k_a));
        const int eh = est_hidden, G = kLstm ? 4 : 3, tiles = (G * eh + tile - 1) / tile,
                  ew = (eh + 63) / 64;
        W.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, ew}, {0, tiles}});
        alpha.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, tiles}});
        bias.set_estimates({{0, int(tile)}, {0, tiles}});
        A.set_estimates({{0, ew}, {0, int(k_a)}});
        beta.set_estimates({{0, int(k_a)}});
        gx.set_estimates({{0, tiles * int(tile)}});
        prev.set_estimates({{0, eh}});
        hidden.set_estimate(eh);
        planes.set_estimates({{0, ew * 8}, {0, int(k_a)}});
        scales.set_estimates({{0, int(k_a)}});
        if (!this->auto_schedule) rnn_step_schedule(f, knobs_, tile, k_w, k_a);
    }

private:
    RnnStepKnobs knobs_;
};

}  // namespace amq::gen
