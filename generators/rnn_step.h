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
// item b as its outermost dimension. The full step of one sequence
// (lstm_full_step, gru_full_step, for step()): gx is not given but computed,
// x_t quantized as h is (quantize_act.h, its Funcs named x_...) and multiplied
// with W_ih by the same product as the recurrent one. The cell is lstm_cell.h's / gru_cell.h's
// math (cell_math.h); the quantizer is quantize_act.h's (batched as the
// quantize_act_batch kernels), reading h_t back from the h output, so the planes
// are those the quantize_act kernel with the same k_a and T gives
// (ref::alternating's codes).
//
// Buffers (Halide dimension order, innermost first; b only when batched):
//   W, alpha, bias  the recurrent weights in the kernel layout (as bgemv)
//   A(w, j, b), beta(j, b)  planes [B][k_a][words] and scales of h_{t-1};
//                words = ceil(H / 64)
//   gx(e, b)     f32  W_ih x_t + b_ih, e in [0, G H) (more is allowed: padded rows);
//                     the full step has instead W_ih, alpha_ih, bias_ih (W's layout,
//                     the same rows), x(e) f32 [input_size] and input_size
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

// One sequence's product as bgemv's, computed first into scratch on the stack.
inline void tiled_product_schedule(BgemvFuncs &p, Halide::Expr tiles, int tile,
                                   int unroll_words, int k_w, int k_a) {
    p.y.compute_root().store_in(Halide::MemoryType::Stack).bound(p.t, 0, tiles);
    BgemvKnobs k;
    k.tile = tile;
    k.unroll_words = unroll_words;
    k.parallel_tiles = 0;
    bgemv_schedule(p, k, k_w, k_a, Halide::Expr(false));
}

// The full step's input side (step()): x_t, its planes (k_a, T as h's) and the
// input product W_ih x_t + b_ih, all in the pipeline.
struct StepInput {
    Halide::Func W, alpha, bias, x;
    Halide::Expr I;  // input size
};

struct RnnStepFuncs : ItemArgs {  // b: the same Var as the quantizer's (by name)
    Halide::Func cnt, gh_tiled;  // the product, bgemv's (r, t) form (bgemm's y when batched)
    Halide::Func gh;             // the same by flat row
    BgemvFuncs product;          // one sequence: the recurrent product
    BgemmFuncs batch_product;    // batched: the product as bgemm's
    // The full step: x_t read clamped to [0, I), its quantizer, its planes as
    // words, the input product and gx by flat row.
    Halide::Func x_read, x_words, gx;
    QuantizeActFuncs qx;
    BgemvFuncs in_product;
    bool full = false;
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
// batched: A, beta, gx and prev take the item as their last argument.
inline RnnStepFuncs rnn_step_algorithm(bool lstm, Halide::Func W, Halide::Func alpha,
                                       Halide::Func bias, Halide::Func A, Halide::Func beta,
                                       Halide::Func gx, Halide::Func prev, Halide::Expr H,
                                       Halide::Expr words, int tile, int k_w, int k_a, int iters,
                                       bool hand_schedule = true,
                                       bool batched = false, const StepInput *input = nullptr) {
    using namespace Halide;
    RnnStepFuncs f;
    f.H = H;
    f.batched = batched;
    Var e = f.e, j = f.j, u = f.u;
    if (input) {  // gx from x_t in the pipeline (one sequence)
        f.full = true;
        Expr I = input->I, words_x = (I + 63) / 64;
        f.x_read = Func("x_read");
        f.x_read(e) = input->x(clamp(likely(e), 0, I - 1));
        f.qx = quantize_act_algorithm(f.x_read, I, k_a, iters, hand_schedule, false, "x_");
        // Word w of plane j: its 8 bytes, little-endian.
        Var w("w");
        f.x_words = Func("x_words");
        Expr word = cast<uint64_t>(0);
        for (int b = 0; b < 8; ++b)
            word = word | (cast<uint64_t>(f.qx.bytes(w * 8 + b, j)) << (8 * b));
        f.x_words(w, j) = word;
        f.in_product = bgemv_algorithm(input->W, input->alpha, input->bias, f.x_words,
                                       f.qx.beta, I, words_x, k_w, k_a, "gx_");
        f.gx = Func("gx");
        f.gx(e) = f.in_product.y(e % tile, e / tile);
        gx = f.gx;
    }
    // The product in bgemv's (row in tile, tile) form, so that the tile lanes
    // are dense loads; the cell reads it by flat row e = t * tile + r.
    Var r = f.r, t = f.t;
    if (batched) {
        f.batch_product = bgemm_algorithm(W, alpha, bias, A, beta, H, words, k_w, k_a);
        f.gh_tiled = f.batch_product.y;  // (r, t, b)
        f.rw = f.batch_product.rw;
    } else {
        f.product = bgemv_algorithm(W, alpha, bias, A, beta, H, words, k_w, k_a, "gh_");
        f.cnt = f.product.cnt;
        f.gh_tiled = f.product.y;
        f.rw = f.product.rw;
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
    f.q = quantize_act_algorithm(f.h_read, H, k_a, iters, hand_schedule, batched);
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
        tiled_product_schedule(f.product, f.tiles, tile, k.unroll_words, k_w, k_a);
    }
    if (f.full) {
        // x_t's quantizer as quantize_act's, its planes and scales into scratch,
        // then the input product as the recurrent one (the same rows).
        f.qx.bytes.compute_root().store_in(MemoryType::Stack);
        f.qx.beta.compute_root().store_in(MemoryType::Stack);
        quantize_act_schedule(f.qx, k.quantize);
        f.x_words.compute_root().store_in(MemoryType::Stack);
        tiled_product_schedule(f.in_product, f.tiles, tile, k.unroll_words, k_w, k_a);
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

// What a step generator builds: one sequence's recurrent step (gx given), a
// batch's, or one sequence's full step (x_t given: its quantization and the
// input product in the pipeline too, for step()).
enum class StepForm { step, batch, full };

// The generator of lstm_step_w<k_w>a<k_a>_t<iters>, gru_step_... and their
// forms lstm_step_batch_... and lstm_full_step_... (gru_ alike): the inputs,
// outputs, constraints and estimates all share (lstm_step_generator.cpp and
// gru_step_generator.cpp each register one arch in every form). batch: every
// per-item buffer has the item as its last dimension, and the kernel takes
// bgemm's batch_tile. full: no gx; the input weights (W_ih, alpha_ih, bias_ih in
// the same layout), x [input_size] and input_size instead.
template <typename Self, bool kLstm, StepForm kForm>
class RnnStepGeneratorBase : public Halide::Generator<Self> {
public:
    static constexpr bool kBatch = kForm == StepForm::batch, kFull = kForm == StepForm::full;
    static constexpr int kItems = kBatch ? 1 : 0;
    template <typename T>
    using FullInput = std::conditional_t<kFull, Input<T>, NoInput>;

    GeneratorParam<int> k_w{"k_w", 2, 1, 4};
    GeneratorParam<int> k_a{"k_a", 2, 1, 4};
    GeneratorParam<int> iters{"iters", 2, 0, 8};
    GeneratorParam<std::string> layout{"layout", "tiled"};
    GeneratorParam<int> tile{"tile", 8, 1, 64};
    GeneratorParam<int> unroll_words{"unroll_words", 1, 1, 16};
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> lanes{"lanes", 16, 1, kSumLanes};
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
    std::conditional_t<kFull, NoInput, Input<Buffer<float, 1 + kItems>>> gx{"gx"};
    Input<Buffer<float, 1 + kItems>> prev{"prev"};
    Input<int32_t> hidden{"hidden", 1, 1, 1 << 24};
    // Batched: items per batch tile, 1 .. amq::bgemm_max_batch_tile(accumulators,
    // max_batch_tile, k_w, k_a), at most the batch: amq::bgemm_batch_tile().
    std::conditional_t<kBatch, Input<int32_t>, NoInput> batch_tile{"batch_tile", 1, 1, 64};
    // Full: the input side.
    FullInput<Buffer<uint64_t, 4>> W_ih{"W_ih"};
    FullInput<Buffer<float, 3>> alpha_ih{"alpha_ih"};
    FullInput<Buffer<float, 2>> bias_ih{"bias_ih"};
    FullInput<Buffer<float, 1>> x{"x"};
    FullInput<int32_t> input_size{"input_size", 1, 1, 1 << 24};

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
        Halide::Func gx_in;
        StepInput in;
        if constexpr (kFull) {
            in = {W_ih, alpha_ih, bias_ih, x, input_size};
            // The input product's rows are the recurrent one's (G H, in tiles).
            constrain_product_weights(W_ih, alpha_ih, bias_ih, lay, tile, k_w,
                                      (Halide::Expr(input_size) + 63) / 64);
            x.dim(0).set_bounds(0, input_size);
        } else {
            gx_in = gx;
            gx.dim(0).set_min(0);
        }
        RnnStepFuncs f =
            rnn_step_algorithm(kLstm, W, alpha, bias, A, beta, gx_in, prev, H, words, tile, k_w,
                               k_a, iters, !this->auto_schedule, kBatch,
                               kFull ? &in : nullptr);
        constrain_product_weights(W, alpha, bias, lay, tile, k_w, words);
        A.dim(0).set_bounds(0, words);
        A.dim(1).set_bounds(0, k_a);
        beta.dim(0).set_bounds(0, k_a);
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
        if constexpr (kFull) {  // the input size estimated as the hidden size
            W_ih.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, ew}, {0, tiles}});
            alpha_ih.set_estimates({{0, int(tile)}, {0, int(k_w)}, {0, tiles}});
            bias_ih.set_estimates({{0, int(tile)}, {0, tiles}});
            x.set_estimates({{0, eh}});
            input_size.set_estimate(eh);
        } else {
            gx.set_estimates(items({{0, tiles * int(tile)}}));
        }
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
