// The C++ API over the AOT kernels: argument checks, buffer wrapping, dispatch
// by bit widths. No arithmetic happens here; the kernels do it all.
#include "amq/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "HalideBuffer.h"
#include "HalideRuntime.h"
#include "amq/reference.h"
#include "amq/weight_layout.h"
#include "amq_kernel_table.h"
#include "halide_hooks.h"

namespace amq {
namespace {

using Halide::Runtime::Buffer;

[[noreturn]] void fail(const std::string &msg) { throw Error(msg); }

void check_bits(const char *kernel, const char *what, int k) {
    if (k < 1 || k > 4)
        fail(std::string(kernel) + ": " + what + " = " + std::to_string(k) +
             " is out of range (expected 1..4)");
}

size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

int g_threads = 1;  // set_num_threads(); the kernels run serially with one

// Below this many weight bytes a parallel bgemv loses to the serial one: waking
// the pool costs more than the work it splits (measured on the 2-vCPU Zen 5 VM:
// 1024x1024 W2A2 took 2.5 us serial, 3.3 us on two threads; docs/PERFORMANCE.md).
constexpr size_t kParallelMinBytes = 512 * 1024;

}  // namespace

const char *isa_name(Isa isa) {
    switch (isa) {
        case Isa::sse41:
            return "sse41";
        case Isa::avx2:
            return "avx2";
        case Isa::avx512:
            return "avx512";
    }
    return "?";
}

Isa active_isa() { return detail::selected_isa(); }

void set_num_threads(int n) {
    detail::install_hooks();
    if (n < 1) fail("set_num_threads: threads = " + std::to_string(n) + " (expected >= 1)");
    halide_set_num_threads(n);
    g_threads = n;
}

KernelLayout kernel_layout() { return KernelLayout{AMQ_KERNEL_LAYOUT, AMQ_KERNEL_TILE}; }

const char *halide_version() { return AMQ_HALIDE_VERSION; }

void BinaryVector::resize(int k_, size_t n_) {
    k = k_;
    n = n_;
    planes.resize(size_t(k) * words());
    beta.resize(size_t(k));
}

WeightStrides weight_strides(const KernelLayout &l, int k, size_t tiles, size_t words) {
    LayoutStrides<int64_t> s;
    if (!layout_strides<int64_t>(l.layout, l.tile, k, int64_t(words), int64_t(tiles), s))
        fail("unknown kernel layout '" + l.layout +
             "' (expected tiled, plane_major or interleaved)");
    return {s.r, s.i, s.w, s.t};
}

namespace {

// A u64 weight buffer W(r, i, w, t) over `data` with the strides of the layout.
Buffer<uint64_t> weight_buffer(const KernelLayout &l, int k, size_t tiles, size_t words,
                               uint64_t *data) {
    const WeightStrides s = weight_strides(l, k, tiles, words);
    halide_dimension_t d[4] = {{0, l.tile, int32_t(s.r)},
                               {0, k, int32_t(s.i)},
                               {0, int32_t(words), int32_t(s.w)},
                               {0, int32_t(tiles), int32_t(s.t)}};
    return Buffer<uint64_t>(data, 4, d);
}

}  // namespace

size_t kernel_word_offset(const KernelLayout &l, int k, size_t tiles, size_t words, size_t row,
                          int i, size_t w) {
    const WeightStrides s = weight_strides(l, k, tiles, words);
    const size_t t = row / size_t(l.tile), r = row % size_t(l.tile);
    return size_t(s.r * int64_t(r) + s.i * i + s.w * int64_t(w) + s.t * int64_t(t));
}

BinaryMatrix BinaryMatrix::from_planes(const uint64_t *planes, const float *alpha, int k_w,
                                       size_t rows, size_t cols, const float *bias) {
    return from_planes(planes, alpha, k_w, rows, cols, bias, kernel_layout());
}

BinaryMatrix BinaryMatrix::with_scales(const float *alpha, int k_w, size_t rows, size_t cols,
                                       const float *bias, const KernelLayout &l) {
    check_bits("BinaryMatrix", "k_w", k_w);
    if (rows == 0 || cols == 0)
        fail("BinaryMatrix: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is empty (expected rows >= 1 and cols >= 1)");
    if (!alpha) fail("BinaryMatrix: alpha must not be null");
    if (l.tile < 1 || l.tile > 64)
        fail("BinaryMatrix: tile = " + std::to_string(l.tile) + " (expected 1..64)");
    weight_strides(l, k_w, 1, 1);  // validates the layout name
    BinaryMatrix m;
    m.k_w_ = k_w;
    m.rows_ = rows;
    m.cols_ = cols;
    m.layout_ = l;
    m.tiles_ = (rows + l.tile - 1) / l.tile;
    const size_t tile = size_t(l.tile);
    m.planes_.assign(size_t(k_w) * m.tiles_ * tile * m.words(), 0);
    m.alpha_.assign(m.tiles_ * k_w * tile, 0.0f);
    m.bias_.assign(m.tiles_ * tile, 0.0f);
    for (size_t r = 0; r < rows; ++r) {
        const size_t t = r / tile, lane = r % tile;
        for (int i = 0; i < k_w; ++i) {
            float a = alpha[r * k_w + i];
            if (!std::isfinite(a))
                fail("BinaryMatrix: alpha[" + std::to_string(r) + "][" + std::to_string(i) +
                     "] is not finite");
            m.alpha_[(t * k_w + i) * tile + lane] = a;
        }
        if (bias) m.bias_[t * tile + lane] = bias[r];
    }
    return m;
}

BinaryMatrix BinaryMatrix::from_planes(const uint64_t *planes, const float *alpha, int k_w,
                                       size_t rows, size_t cols, const float *bias,
                                       const KernelLayout &l) {
    if (!planes) fail("BinaryMatrix: planes must not be null");
    BinaryMatrix m = with_scales(alpha, k_w, rows, cols, bias, l);
    const size_t words = m.words();
    const uint64_t pad_mask = ref::last_word_mask(cols);
    for (int i = 0; i < k_w; ++i)
        for (size_t r = 0; r < rows; ++r) {
            const uint64_t *src = planes + (size_t(i) * rows + r) * words;
            if (src[words - 1] & ~pad_mask)
                fail("BinaryMatrix: plane " + std::to_string(i) + " row " + std::to_string(r) +
                     " has bits set past column " + std::to_string(cols) +
                     " (padding bits must be 0)");
            for (size_t w = 0; w < words; ++w)
                m.planes_[kernel_word_offset(l, k_w, m.tiles_, words, r, i, w)] = src[w];
        }
    return m;
}

BinaryMatrix BinaryMatrix::from_codes(const float *src, const float *alpha, int k_w, size_t rows,
                                      size_t cols, const float *bias) {
    detail::install_hooks();
    if (!src) fail("BinaryMatrix: src must not be null");
    BinaryMatrix m = with_scales(alpha, k_w, rows, cols, bias, kernel_layout());
    Buffer<uint64_t> W = weight_buffer(m.layout_, k_w, m.tiles_, m.words(), m.planes_.data());
    Buffer<float> in(const_cast<float *>(src), int(cols), int(rows), k_w);
    detail::check(kernels::pack_bits_kernel(in, W), "pack_bits");
    return m;
}

std::vector<uint64_t> BinaryMatrix::to_planes() const {
    const KernelLayout &l = layout_;
    std::vector<uint64_t> out(size_t(k_w_) * rows_ * words());
    for (int i = 0; i < k_w_; ++i)
        for (size_t r = 0; r < rows_; ++r)
            for (size_t w = 0; w < words(); ++w)
                out[(size_t(i) * rows_ + r) * words() + w] =
                    planes_[kernel_word_offset(l, k_w_, tiles_, words(), r, i, w)];
    return out;
}

size_t BinaryMatrix::bytes() const {
    return planes_.size() * sizeof(uint64_t) + alpha_.size() * sizeof(float);
}

void quantize_act(const float *x, size_t n, int k_a, int iters, BinaryVector &out) {
    detail::install_hooks();
    check_bits("quantize_act", "k_a", k_a);
    if (n == 0) fail("quantize_act: n = 0 (expected a vector of length >= 1)");
    if (iters < 0 || iters > 3)
        fail("quantize_act: iters = " + std::to_string(iters) +
             " is not built (expected 0..3; 0 = greedy)");
    if (!x) fail("quantize_act: x is null");
    out.resize(k_a, n);
    // The kernel reads x padded to a multiple of 64 (the padding is not counted).
    const size_t padded = round_up(n, 64);
    thread_local std::vector<float> scratch;
    const float *src = x;
    if (padded != n) {
        if (scratch.size() < padded) scratch.assign(padded, 0.0f);
        std::memcpy(scratch.data(), x, n * sizeof(float));
        src = scratch.data();
    }
    Buffer<float> xb(const_cast<float *>(src), int(padded));
    Buffer<uint8_t> bytes(reinterpret_cast<uint8_t *>(out.planes.data()), int(out.words() * 8),
                          k_a);
    Buffer<float> beta(out.beta.data(), k_a);
    detail::check(kernels::quantize_act[k_a - 1][iters](xb, int(n), bytes, beta), "quantize_act");
    for (int j = 0; j < k_a; ++j)
        if (!std::isfinite(out.beta[j]))
            fail("quantize_act: the input vector (length " + std::to_string(n) +
                 ") contains NaN or Inf");
}

void bgemv(const BinaryMatrix &W, const BinaryVector &a, float *y) {
    detail::install_hooks();
    if (W.k_w() == 0) fail("bgemv: the weight matrix is empty (not built)");
    if (W.layout().layout != kernel_layout().layout || W.tile() != kernel_layout().tile)
        fail("bgemv: the matrix is in layout " + W.layout().layout + "/" +
             std::to_string(W.tile()) + " but the kernels were built for " +
             kernel_layout().layout + "/" + std::to_string(kernel_layout().tile));
    check_bits("bgemv", "k_a", a.k);
    if (a.n != W.cols())
        fail("bgemv: activation length " + std::to_string(a.n) + " does not match the " +
             std::to_string(W.rows()) + "x" + std::to_string(W.cols()) + " weight matrix");
    if (a.planes.size() < size_t(a.k) * a.words() || a.beta.size() < size_t(a.k))
        fail("bgemv: activation has " + std::to_string(a.planes.size()) + " words and " +
             std::to_string(a.beta.size()) + " scales (expected " +
             std::to_string(size_t(a.k) * a.words()) + " and " + std::to_string(a.k) + ")");
    if (!y) fail("bgemv: y is null");
    Buffer<uint64_t> wb = weight_buffer(W.layout(), W.k_w(), W.tiles(), W.words(),
                                        const_cast<uint64_t *>(W.kernel_planes().data()));
    Buffer<float> alpha(const_cast<float *>(W.kernel_alpha().data()), W.tile(), W.k_w(),
                        int(W.tiles()));
    Buffer<float> bias(const_cast<float *>(W.kernel_bias().data()), W.tile(), int(W.tiles()));
    Buffer<uint64_t> A(const_cast<uint64_t *>(a.planes.data()), int(a.words()), a.k);
    Buffer<float> beta(const_cast<float *>(a.beta.data()), a.k);
    const size_t padded = W.tiles() * size_t(W.tile());
    thread_local std::vector<float> scratch;
    float *dst = y;
    if (padded != W.rows()) {
        if (scratch.size() < padded) scratch.resize(padded);
        dst = scratch.data();
    }
    Buffer<float> yb(dst, W.tile(), int(W.tiles()));
    detail::check(
        kernels::bgemv[W.k_w() - 1][a.k - 1](wb, alpha, bias, A, beta, int(a.n),
                                             g_threads > 1 && W.bytes() >= kParallelMinBytes, yb),
        "bgemv");
    if (dst != y) std::memcpy(y, dst, W.rows() * sizeof(float));
}

std::vector<uint64_t> pack_bits(const float *src, int planes, size_t rows, size_t cols) {
    detail::install_hooks();
    check_bits("pack_bits", "planes", planes);
    if (rows == 0 || cols == 0)
        fail("pack_bits: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is empty (expected rows >= 1 and cols >= 1)");
    if (!src) fail("pack_bits: src is null");
    const int words = int((cols + 63) / 64);
    std::vector<uint64_t> out(size_t(planes) * rows * words);
    Buffer<float> s(const_cast<float *>(src), int(cols), int(rows), planes);
    halide_dimension_t d[4] = {
        {0, 1, words}, {0, planes, int(rows) * words}, {0, words, 1}, {0, int(rows), words}};
    Buffer<uint64_t> W(out.data(), 4, d);
    detail::check(kernels::pack_bits_plane(s, W), "pack_bits");
    return out;
}

void f32_gemv(const float *M, size_t rows, size_t cols, const float *x, const float *bias,
              float *y) {
    detail::install_hooks();
    if (rows == 0 || cols == 0)
        fail("f32_gemv: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is empty (expected rows >= 1 and cols >= 1)");
    if (!M || !x || !y) fail("f32_gemv: M, x and y must not be null");
    thread_local std::vector<float> zeros;
    if (!bias) {
        if (zeros.size() < rows) zeros.assign(rows, 0.0f);
        bias = zeros.data();
    }
    Buffer<float> Mb(const_cast<float *>(M), int(cols), int(rows));
    Buffer<float> xb(const_cast<float *>(x), int(cols));
    Buffer<float> bb(const_cast<float *>(bias), int(rows));
    Buffer<float> yb(y, int(rows));
    detail::check(
        kernels::f32_gemv(Mb, xb, bb,
                          g_threads > 1 && rows * cols * sizeof(float) >= kParallelMinBytes, yb),
        "f32_gemv");
}

}  // namespace amq
