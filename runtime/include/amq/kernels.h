// amq kernels: the C++ API over the AOT-compiled Halide pipelines.
//
// Everything here checks its arguments and throws amq::Error with a message that
// names the kernel, the argument and what was expected; the Halide runtime's
// abort() on a bad buffer is replaced by the same exception.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "amq/aligned.h"
#include "amq/float_panels.h"

namespace amq {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Instruction-set variants of the multi-target kernel libraries, best last.
enum class Isa { sse41, avx2, avx512 };
const char *isa_name(Isa isa);

// The variant the kernels run on this CPU. The environment variable
// AMQ_ISA=avx512|avx2|sse41 caps it (read once, before the first kernel call);
// a cap above what the CPU can run has no effect. Throws amq::Error on an
// unknown AMQ_ISA value.
Isa active_isa();

// Threads for the parallel kernels, the calling thread included (n >= 1; one
// means every kernel runs serially on its caller). The kernels run on amq's own
// pool: after a parallel kernel its n - 1 workers spin for AMQ_SPIN_US
// microseconds (default 100; 0 = sleep at once) so that the next kernel of an
// RNN step finds them awake, then sleep. One parallel kernel uses the pool at a
// time; a kernel called from another thread meanwhile runs serially on it.
void set_num_threads(int n);

// Weight layout the bgemv kernels of this build were compiled for.
struct KernelLayout {
    std::string layout;  // tiled | plane_major | interleaved
    int tile = 8;        // rows per tile
};
KernelLayout kernel_layout();
inline bool operator==(const KernelLayout &a, const KernelLayout &b) {
    return a.layout == b.layout && a.tile == b.tile;
}

// Halide version the kernels were generated with, e.g. "14.0.0".
const char *halide_version();

// The schedules file the kernels were built with (AMQ_SCHEDULES at build time:
// schedules/<cpu-id>.json when tuned for the build machine, else defaults.json).
const char *kernel_schedules();

// A kernel linked into this build (`amq info --kernels`): each common kernel
// (any shape) and each per-problem variant (one shape, its tuned knobs) that the
// schedules file named and the build compiled (schedules/manifest.json,
// docs/TUNING.md).
struct KernelInfo {
    std::string name;              // the function is amq_<name>
    std::string pipeline;          // bgemv, bgemm, quantize_act, ...
    std::string bits;              // "W2A2", "A2" (quantize_act), "" (float kernels)
    size_t rows = 0, cols = 0;     // the shape a variant is specialized to; 0 = any
    std::string knobs;             // JSON object: params and knobs it was built with
    std::vector<std::string> isa;  // ISA variants the library holds, best first
    bool variant = false;          // a per-problem variant
    double tuned_us = 0, common_us = 0;  // a variant's time and the common kernel's (tuner)
};
// Every common kernel, then every variant.
const std::vector<KernelInfo> &linked_kernels();

// An activation vector quantized to k planes: planes [k][words], scales [k].
struct BinaryVector {
    int k = 0;
    size_t n = 0;
    AlignedVector<uint64_t> planes;
    std::vector<float> beta;

    size_t words() const { return (n + 63) / 64; }
    // Sizes the buffers (allocates only when they grow).
    void resize(int k_, size_t n_);
};

// A batch of B activation vectors of the same length, each quantized to k planes
// (its own scales), for bgemm: planes [B][k][words], scales [B][k]; item b holds
// what a BinaryVector would.
struct BinaryBatch {
    int k = 0;
    size_t n = 0, batch = 0;
    AlignedVector<uint64_t> planes;
    std::vector<float> beta;

    size_t words() const { return (n + 63) / 64; }
    // Sizes the buffers (allocates only when they grow).
    void resize(int k_, size_t n_, size_t batch_);
    // Copies v (with this batch's k and n) into item b; throws amq::Error otherwise.
    void set(size_t b, const BinaryVector &v);
};

// A weight matrix prepared for the bgemv kernels: planes repacked into the
// kernel's layout, scales and bias row-tiled. Immutable once built.
class BinaryMatrix {
public:
    BinaryMatrix() = default;

    // From the model-file format: planes [k_w][rows][words], words = ceil(cols/64),
    // padding bits 0; alpha [rows][k_w]; bias [rows] or null.
    static BinaryMatrix from_planes(const uint64_t *planes, const float *alpha, int k_w,
                                    size_t rows, size_t cols, const float *bias = nullptr);
    // The same for another layout than the build's (for the tuner and tests; only
    // kernels built for that layout can run it).
    static BinaryMatrix from_planes(const uint64_t *planes, const float *alpha, int k_w,
                                    size_t rows, size_t cols, const float *bias,
                                    const KernelLayout &layout);

    // The two from_planes above and from_codes without a layout bind the matrix
    // to the per-problem variant of its k_w and shape, if the build has one
    // (then the planes are packed in that variant's layout), once, here; bgemv and
    // bgemm then run the variant for the activation bits it was tuned for, and
    // the common kernels (or bgemm kernels of the variant's layout) otherwise.
    // With the environment variable AMQ_VARIANTS=0 nothing is bound (the common
    // kernels run every shape: to compare them with the variants).

    // From codes: src [k_w][rows][cols] holds +1/-1 (or any floats: their signs,
    // sign(0) = +1), packed straight into the kernel layout by the pack_bits
    // kernel built for it; alpha [rows][k_w]; bias [rows] or null.
    static BinaryMatrix from_codes(const float *src, const float *alpha, int k_w, size_t rows,
                                   size_t cols, const float *bias = nullptr);

    // Back to the model-file format [k_w][rows][words].
    std::vector<uint64_t> to_planes() const;

    int k_w() const { return k_w_; }
    size_t rows() const { return rows_; }
    size_t cols() const { return cols_; }
    size_t words() const { return (cols_ + 63) / 64; }
    size_t tiles() const { return tiles_; }
    // Rows of the kernels' outputs: rows() rounded up to whole tiles.
    size_t rows_padded() const { return tiles_ * size_t(layout_.tile); }
    int tile() const { return layout_.tile; }
    const KernelLayout &layout() const { return layout_; }
    // The variant that bgemv runs on this matrix with k_a activation planes, or
    // null for the common kernel.
    const KernelInfo *variant(int k_a) const;
    // The same for any matrix of k_w planes and this shape (the binding depends on
    // nothing else).
    static const KernelInfo *variant_for(int k_w, int k_a, size_t rows, size_t cols);
    // Bytes of the packed planes and scales (what the model costs in memory).
    size_t bytes() const;

    // Kernel-layout storage (for the kernels and the tuner).
    const AlignedVector<uint64_t> &kernel_planes() const { return planes_; }
    // The strides of kernel_planes() in words, by (row in tile, plane, word, tile).
    const int32_t (&kernel_strides() const)[4] { return strides_; }
    const std::vector<float> &kernel_alpha() const { return alpha_; }
    const std::vector<float> &kernel_bias() const { return bias_; }

private:
    friend void bgemv(const BinaryMatrix &W, const BinaryVector &a, float *y);
    friend void bgemm(const BinaryMatrix &W, const BinaryBatch &a, float *y, size_t y_stride);

    // Checks the arguments, sizes the storage (planes all 0) and fills the
    // row-tiled scales and bias; from_planes and from_codes then write the planes.
    static BinaryMatrix with_scales(const float *alpha, int k_w, size_t rows, size_t cols,
                                    const float *bias, const KernelLayout &layout);

    // The variant of (k_w, rows, cols) whose layout such a matrix is packed in
    // (-1: none), and the binding of this matrix to it and its siblings.
    static int bound_variant(int k_w, size_t rows, size_t cols);
    static KernelLayout packing_layout(int bound);
    void bind(int bound);

    int k_w_ = 0;
    size_t rows_ = 0, cols_ = 0, tiles_ = 0;
    int bound_ = -1;        // the variant whose layout the planes are in; -1 = common
    // The planes are in the layout of the kernels bgemv/bgemm pick for this
    // matrix (checked once here, not per call), and their strides (r, i, w, t).
    bool layout_ok_ = false;
    int32_t strides_[4] = {0, 0, 0, 0};
    int variant_[4] = {-1, -1, -1, -1};  // variant per k_a - 1; -1 = common kernel
    KernelLayout layout_;
    AlignedVector<uint64_t> planes_;  // layout per kernel_layout(), 64-byte aligned
    std::vector<float> alpha_;      // [tiles][k_w][tile]
    std::vector<float> bias_;       // [tiles][tile]
};

// Offset of word w of plane i of row `row` in a kernel-layout buffer.
size_t kernel_word_offset(const KernelLayout &layout, int k, size_t tiles, size_t words, size_t row,
                          int i, size_t w);

// Strides (in words) of the kernel's W(r, i, w, t) buffer dimensions for a layout
// (the table in amq/weight_layout.h, which the generators use too).
struct WeightStrides {
    int64_t r, i, w, t;
};
WeightStrides weight_strides(const KernelLayout &layout, int k, size_t tiles, size_t words);

// Quantizes x[n] into k_a planes: greedy init, then `iters` alternating cycles
// (iters 0 = greedy; 0..3 are built). x must be finite: NaN or Inf throws.
// An all-zero x gives beta = 0 and all codes +1.
void quantize_act(const float *x, size_t n, int k_a, int iters, BinaryVector &out);

// The same into item b of a batch that is already sized with out.k == k_a and
// out.n == n (BinaryBatch::resize), with no copy. `ternary`: as
// quantize_act_ternary (then k_a must be 2 and iters is not used).
void quantize_act(const float *x, size_t n, int k_a, int iters, BinaryBatch &out, size_t b,
                  bool ternary = false);

// The same for `items` vectors of length n at once, item i at x + i * x_stride
// (x_stride >= n), into items first .. first + items - 1 of out (sized as above,
// out.batch >= first + items): the planes and scales of `items` calls. The
// vectors go through quantize_act_batch kernel calls of up to 32 KB of inputs
// each (64 vectors of 128 values, 8 of 1024), whose items' scalar stages run
// as vectors over the items (per vector 2.6x as fast as a call each at n = 64,
// 2.2x at 128, 1.15x at 1024); vectors longer than 4096 values (padded), and
// ternary, through a kernel call each.
void quantize_act_batch(const float *x, size_t n, size_t x_stride, size_t items, int k_a,
                        int iters, BinaryBatch &out, size_t first = 0, bool ternary = false);

// Ternary activations (act_method ternary, docs/MODEL_FORMAT.md; the rule of
// ref::ternary): t = 0.7 mean|x|, a = mean |x_e| over |x_e| > t; 2 planes with
// beta = {a/2, a/2}, codes (+1,+1) above t, (-1,-1) below -t, (+1,-1) between.
// x must be finite: NaN or Inf throws.
void quantize_act_ternary(const float *x, size_t n, BinaryVector &out);
void quantize_act_ternary(const float *x, size_t n, BinaryBatch &out, size_t b);

// y[r] = bias[r] + sum_i sum_j alpha[r][i] beta[j] (n - 2 popcount(W_ri ^ A_j)),
// for r < W.rows(); y must hold W.rows() floats.
void bgemv(const BinaryMatrix &W, const BinaryVector &a, float *y);

// bgemv of every item of a batch, streaming the weights from memory once:
//   y[b * y_stride + r] = bias[r] + sum_i sum_j alpha[r][i] beta_b[j] (n - 2 popcount(W_ri ^ A_bj))
// for b < a.batch, r < W.rows(). y_stride >= W.rows() (0 means W.rows()). With
// y_stride >= W.rows_padded() the kernel writes into y directly, including the
// padding rows [W.rows(), W.rows_padded()) of every item (as zeros); with a
// smaller stride it goes through a scratch buffer and writes only the W.rows()
// values of each item.
void bgemm(const BinaryMatrix &W, const BinaryBatch &a, float *y, size_t y_stride = 0);

// A batch of float vectors in memory: item b holds `size` floats at
// data + b * stride (stride 0 means size: dense). The gate inputs of the cells
// may thus be a bgemm output with padded rows (stride W.rows_padded()).
struct ConstFloatBatch {
    const float *data = nullptr;
    size_t batch = 0, size = 0, stride = 0;
};
struct FloatBatch {
    float *data = nullptr;
    size_t batch = 0, size = 0, stride = 0;
};

// One LSTM step for B items, exactly PyTorch's nn.LSTM cell (gates i, f, g, o):
//   i = sigmoid(gx_i + gh_i), f = sigmoid(gx_f + gh_f), g = tanh(gx_g + gh_g),
//   o = sigmoid(gx_o + gh_o);   c_out = f c_prev + i g;   h_out = o tanh(c_out)
// c_prev: B items of H values (H and B come from it); gx = W_ih x + b_ih and
// gh = W_hh h + b_hh: B items of 4H values, value q H + u is gate q of unit u;
// h_out, c_out: B items of H values. c_out may be c_prev itself (same data and
// stride: updated in place); no other output may overlap an input or the other
// output. Sizes, batches and overlaps are checked (amq::Error names the argument).
void lstm_cell(ConstFloatBatch gx, ConstFloatBatch gh, ConstFloatBatch c_prev, FloatBatch h_out,
               FloatBatch c_out);

// One GRU step for B items, exactly PyTorch's nn.GRU cell (gates r, z, n):
//   r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r gh_n),
//   h_out = (1 - z) n + z h_prev
// h_prev: B items of H values; gx, gh: B items of 3H values (gh includes b_hh, so
// r multiplies W_hn h + b_hn as in PyTorch); h_out: B items of H values, may be
// h_prev itself (same data and stride), must not overlap gx or gh.
void gru_cell(ConstFloatBatch gx, ConstFloatBatch gh, ConstFloatBatch h_prev, FloatBatch h_out);

// Packs codes (+1/-1, or the signs of any floats, sign(0) = +1) given as
// src [planes][rows][cols] into the model-file layout [planes][rows][words].
std::vector<uint64_t> pack_bits(const float *src, int planes, size_t rows, size_t cols);

// A float weight matrix prepared for f32_gemv: packed in row panels of
// float_panel() rows (amq/float_panels.h: [panels][cols][panel], rows past the
// last zero, 64-byte aligned), with its bias. Immutable once built; built once
// (a model packs its float matrices at load), so that no call packs.
class FloatMatrix {
public:
    FloatMatrix() = default;
    // From row-major M [rows][cols] and bias [rows] or null (zeros).
    static FloatMatrix from_rows(const float *M, size_t rows, size_t cols,
                                 const float *bias = nullptr);
    // The same in panels of `panel` rows, another than the build's (for tests;
    // only a kernel built for that panel can run it).
    static FloatMatrix from_rows(const float *M, size_t rows, size_t cols, const float *bias,
                                 size_t panel);

    size_t rows() const { return rows_; }
    size_t cols() const { return cols_; }
    size_t panel() const { return panel_; }
    size_t panels() const { return panel_ ? float_panels(rows_, panel_) : 0; }
    // Bytes of the packed floats and the bias (what the matrix costs in memory).
    size_t bytes() const { return (packed_.size() + bias_.size()) * sizeof(float); }
    const AlignedVector<float> &packed() const { return packed_; }
    const std::vector<float> &bias() const { return bias_; }

private:
    size_t rows_ = 0, cols_ = 0, panel_ = 0;
    AlignedVector<float> packed_;  // [panels][cols][panel]
    std::vector<float> bias_;      // [rows]
};

// Rows per panel the build's f32_gemv kernel reads (the schedules' f32_gemv
// panel knob).
size_t float_panel();

// The float product: y[r] = bias[r] + sum_c M[r][c] x[c] for r < M.rows();
// x has x_size == M.cols() floats.
void f32_gemv(const FloatMatrix &M, const float *x, size_t x_size, float *y);

// The same on row-major M [rows][cols] (bias may be null): packs M into a
// thread-local FloatMatrix on every call, which reads and writes all of M once
// more. Slow; for one-off products. Build a FloatMatrix for repeated ones.
void f32_gemv(const float *M, size_t rows, size_t cols, const float *x, const float *bias,
              float *y);

// ---- Fused recurrent steps ----------------------------------------------------
// One step of a quantized layer for a batch of sequences in one kernel: the
// recurrent product W_hh h_{t-1} + b_hh on the planes of h_{t-1}, the cell on it
// and gx, and the planes of h_t (quantized to h_q's k planes with `iters`
// alternating cycles) for the next step. The same results as bgemm +
// lstm_cell/gru_cell + quantize_act. Built for some (k_w, k_a, iters) only, for
// batch 1 and for batches: fused_step_built() says which; the functions throw
// amq::Error for the others.
bool fused_step_built(int k_w, int k_a, int iters, size_t batch = 1);
// Whether the fused kernels take W_hh's size (hidden at most 2^24, the planes
// indexable in int32); the runner uses the separate kernels when not.
bool fused_step_fits(const BinaryMatrix &W_hh);

// LSTM: W_hh [4H x H]; h_q: planes and scales of h_{t-1} (k_a, n = H) for its
// B = h_q.batch sequences; gx: item b's W_ih x_t + b_ih at gx + b gx_stride,
// gx_stride >= 4H floats; c: c_{t-1} in, c_t out [B][H]; h: h_t out [B][H];
// h_q_next: the planes of h_t, sized by the call (batch B), not h_q itself.
void lstm_step(const BinaryMatrix &W_hh, const BinaryBatch &h_q, const float *gx,
               size_t gx_stride, float *c, float *h, BinaryBatch &h_q_next, int iters);
// GRU: W_hh [3H x H]; h: h_{t-1} in, h_t out [B][H]; gx_stride >= 3H; the rest as
// lstm_step.
void gru_step(const BinaryMatrix &W_hh, const BinaryBatch &h_q, const float *gx,
              size_t gx_stride, float *h, BinaryBatch &h_q_next, int iters);

// The full step of one sequence from x_t, for step(): x_t quantized in the kernel
// as h is (h_q's k planes, `iters` cycles), the input product W_ih x_t + b_ih,
// then lstm_step's / gru_step's on it, in one kernel. W_ih [G H x I] with W_hh's
// k_w; x: x_t [I], I = W_ih.cols(); h_q batch 1; the rest as lstm_step /
// gru_step. The same results as quantize_act + bgemv + lstm_step. Built for some
// (k_w, k_a, iters): fused_full_step_built() says which.
bool fused_full_step_built(int k_w, int k_a, int iters);
void lstm_full_step(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, const float *x,
                    const BinaryBatch &h_q, float *c, float *h, BinaryBatch &h_q_next,
                    int iters);
void gru_full_step(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, const float *x,
                   const BinaryBatch &h_q, float *h, BinaryBatch &h_q_next, int iters);

// A fused step bound once to a layer direction's weights (W_hh, and W_ih for a
// full step), its k_a, batch, gx item stride and state buffers (c, h), with the
// checks of the functions above made here (the same errors). Each run() then
// checks only h_q (the bound k_a, hidden size and batch) and its input, points
// the kernel at them and runs it: for a runner that calls the same step at
// every time step (the functions above set up every buffer of the kernel call
// on every call: 30-100 ns a step, 15-30% of the step kernel at hidden 128 and
// below on the Zen 5 VM, `BM_step` in amq_bench_batch, docs/PERFORMANCE.md). The bound matrices and buffers must
// outlive the binding and stay where they are. Empty when default-constructed;
// movable, not copyable.
class FusedStep {
public:
    FusedStep();
    FusedStep(FusedStep &&) noexcept;
    FusedStep &operator=(FusedStep &&) noexcept;
    ~FusedStep();
    // lstm_step / gru_step for `batch` sequences: run(h_q, gx, h_q_next), gx as there.
    static FusedStep lstm(const BinaryMatrix &W_hh, int k_a, size_t batch, size_t gx_stride,
                          float *c, float *h, int iters);
    static FusedStep gru(const BinaryMatrix &W_hh, int k_a, size_t batch, size_t gx_stride,
                         float *h, int iters);
    // lstm_full_step / gru_full_step (one sequence): run(h_q, x_t, h_q_next).
    static FusedStep lstm_full(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, int k_a,
                               float *c, float *h, int iters);
    static FusedStep gru_full(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, int k_a,
                              float *h, int iters);
    bool empty() const { return !b_; }
    // One step: h_q the planes of h_{t-1}, in gx (or x_t for a full step),
    // h_q_next the planes of h_t (sized here; not h_q itself). Throws
    // amq::Error on a mismatched h_q, a null input, or NaN / Inf in h_t.
    void run(const BinaryBatch &h_q, const float *in, BinaryBatch &h_q_next) const;

    struct Binding;  // (the kernel call's buffers; kernels.cpp)

private:
    std::unique_ptr<Binding> b_;
};

// ---- Fused or separate steps: the build's choice per problem -------------------
// `amq tune --steps` times a layer's step on the fused kernel and on the separate
// ones (bgemv / bgemm, the cell, quantize_act) and writes both times to the
// schedules file's "steps"; the build links them as a table, from which the
// runner takes its choice (docs/TUNING.md). A problem is the cell, the bit pair,
// the hidden size, the batch and the call: "run" (the recurrent step of run(),
// whose input product is done for a whole chunk first) or "step" (the full step
// of step(), batch 1).
struct StepChoiceEntry {
    const char *cell;  // "lstm" or "gru"
    int k_w, k_a, hidden, batch;
    const char *call;  // "run" or "step"
    bool fused;        // false: the separate kernels were more than 3% faster
    double fused_us, separate_us;
};
enum class StepCall { run, step };
struct StepChoice {
    bool fused = true;                       // take the fused kernel
    const StepChoiceEntry *entry = nullptr;  // the entry it follows; null: none
                                             // of this cell, bits, call and batch
                                             // class, so fused (the default)
};
// Among `entries` (up to a null cell) of the same cell, k_w, k_a and call, and
// batch 1 for batch 1 and above 1 for above 1: the nearest in log2(hidden) +
// log2(batch) (the first of equals). `cell`: "lstm" or "gru".
StepChoice step_choice(const StepChoiceEntry *entries, const char *cell, int k_w, int k_a,
                       size_t hidden, size_t batch, StepCall call);
// The same over the build's table.
StepChoice step_choice(const char *cell, int k_w, int k_a, size_t hidden, size_t batch,
                       StepCall call);
// The build's table, up to its null entry.
const StepChoiceEntry *step_choices();

}  // namespace amq
