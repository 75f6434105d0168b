// The C++ API over the AOT kernels: argument checks, buffer wrapping, dispatch
// by bit widths. No arithmetic happens here; the kernels do it all.
#include "amq/kernels.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>

#include "HalideBuffer.h"
#include "HalideRuntime.h"
#include "amq/batch_tile.h"
#include "amq/float_panels.h"
#include "amq/reference.h"
#include "amq/thread_pool.h"
#include "amq/weight_layout.h"
#include "amq_kernel_table.h"
#include "halide_hooks.h"

namespace amq {
namespace {

using Halide::Runtime::Buffer;

[[noreturn]] void fail(const std::string &msg) { throw Error(msg); }
// A kernel's check: "kernel: what".
[[noreturn]] void fail(const char *kernel, const std::string &what) {
    throw Error(std::string(kernel) + ": " + what);
}

void check_bits(const char *kernel, const char *what, int k) {
    if (k < 1 || k > 4)
        fail(kernel,
             std::string(what) + " = " + std::to_string(k) + " is out of range (expected 1..4)");
}

size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

// Whether a product with this many bytes of weights runs its parallel variant:
// the pool's thread count (set_num_threads) and threshold, which the tuner uses too.
bool parallel(size_t weight_bytes) { return pool::runs_parallel(pool::threads(), weight_bytes); }

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
    pool::set_threads(n);
}

KernelLayout kernel_layout() { return KernelLayout{AMQ_KERNEL_LAYOUT, AMQ_KERNEL_TILE}; }

const char *halide_version() { return AMQ_HALIDE_VERSION; }

const char *kernel_schedules() { return AMQ_KERNEL_SCHEDULES; }

void BinaryVector::resize(int k_, size_t n_) {
    k = k_;
    n = n_;
    planes.resize(size_t(k) * words());
    beta.resize(size_t(k));
}

void BinaryBatch::resize(int k_, size_t n_, size_t batch_) {
    k = k_;
    n = n_;
    batch = batch_;
    planes.resize(batch * size_t(k) * words());
    beta.resize(batch * size_t(k));
}

void BinaryBatch::set(size_t b, const BinaryVector &v) {
    if (b >= batch)
        fail("BinaryBatch::set: item " + std::to_string(b) + " is past the batch of " +
             std::to_string(batch));
    if (v.k != k || v.n != n)
        fail("BinaryBatch::set: the vector has k = " + std::to_string(v.k) +
             ", n = " + std::to_string(v.n) + " (expected the batch's k = " + std::to_string(k) +
             ", n = " + std::to_string(n) + ")");
    if (v.planes.size() < size_t(k) * words() || v.beta.size() < size_t(k))
        fail("BinaryBatch::set: the vector has " + std::to_string(v.planes.size()) + " words and " +
             std::to_string(v.beta.size()) + " scales (expected " +
             std::to_string(size_t(k) * words()) + " and " + std::to_string(k) + ")");
    std::copy(v.planes.begin(), v.planes.begin() + size_t(k) * words(),
              planes.begin() + b * size_t(k) * words());
    std::copy(v.beta.begin(), v.beta.begin() + k, beta.begin() + b * size_t(k));
}

WeightStrides weight_strides(const KernelLayout &l, int k, size_t tiles, size_t words) {
    LayoutStrides<int64_t> s;
    if (!layout_strides<int64_t>(l.layout, l.tile, k, int64_t(words), int64_t(tiles), s))
        fail("unknown kernel layout '" + l.layout +
             "' (expected tiled, plane_major or interleaved)");
    return {s.r, s.i, s.w, s.t};
}

namespace {

// A halide_buffer_t over memory the caller owns, made on the stack: the hot
// calls (products, quantize_act, fused steps) build several per call, and
// Halide::Runtime::Buffer's shape bookkeeping and destructor cost tens of ns of
// a product of about 1 us. Dense (innermost stride 1) unless given strides.
template <int D>
struct View {
    halide_dimension_t dim[D];
    halide_buffer_t buf{};
    View() { buf.dim = dim; }  // empty: set() it before use
    template <typename T>
    View(const T *data, const int (&extent)[D]) {
        set(data, extent);
    }
    template <typename T>
    View(const T *data, const int (&extent)[D], const int32_t (&stride)[D]) {
        set(data, extent, stride);
    }
    // Dense (innermost stride 1).
    template <typename T>
    void set(const T *data, const int (&extent)[D]) {
        int32_t stride = 1;
        for (int i = 0; i < D; ++i) {
            dim[i] = {0, extent[i], stride, 0};
            stride *= extent[i];
        }
        init(data);
    }
    // Given strides, written field by field (a halide_dimension_t array built
    // first and copied in stalled on store forwarding: 2% of a small step).
    template <typename T>
    void set(const T *data, const int (&extent)[D], const int32_t (&stride)[D]) {
        for (int i = 0; i < D; ++i) dim[i] = {0, extent[i], stride[i], 0};
        init(data);
    }
    // Points the view at other memory of the same shape.
    template <typename T>
    void point(const T *data) {
        buf.host = reinterpret_cast<uint8_t *>(const_cast<T *>(data));
    }
    // buf.dim points into this object: never copied (returned by guaranteed elision).
    View(const View &) = delete;
    View &operator=(const View &) = delete;
    operator halide_buffer_t *() { return &buf; }

private:
    template <typename T>
    void init(const T *data) {
        point(data);
        buf.type = halide_type_of<T>();
        buf.dimensions = D;
        buf.dim = dim;
    }
};

// The weight side of a product as the kernels read it: the packed planes of a
// matrix (its kernel layout's strides) and its row-tiled scales and bias.
struct WeightViews {
    View<4> W;
    View<3> alpha;
    View<2> bias;
    WeightViews() = default;  // empty: set() it before use
    explicit WeightViews(const BinaryMatrix &M) { set(M); }
    void set(const BinaryMatrix &M) {
        const int tile = M.tile(), tiles = int(M.tiles());
        W.set(M.kernel_planes().data(), {tile, M.k_w(), int(M.words()), tiles}, M.kernel_strides());
        alpha.set(M.kernel_alpha().data(), {tile, M.k_w(), tiles});
        bias.set(M.kernel_bias().data(), {tile, tiles});
    }
};

}  // namespace

size_t kernel_word_offset(const KernelLayout &l, int k, size_t tiles, size_t words, size_t row,
                          int i, size_t w) {
    const WeightStrides s = weight_strides(l, k, tiles, words);
    const size_t t = row / size_t(l.tile), r = row % size_t(l.tile);
    return size_t(s.r * int64_t(r) + s.i * i + s.w * int64_t(w) + s.t * int64_t(t));
}

const std::vector<KernelInfo> &linked_kernels() {
    static const std::vector<KernelInfo> list = [] {
        const std::vector<std::string> isa(std::begin(kernels::isa_variants),
                                           std::end(kernels::isa_variants));
        std::vector<KernelInfo> out;
        for (const kernels::KernelEntry &k : kernels::kernel_list) {
            KernelInfo info;
            info.name = k.name;
            info.pipeline = k.pipeline;
            info.bits = k.bits;
            info.knobs = k.params;
            info.isa = isa;
            out.push_back(std::move(info));
        }
        for (int v = 0; v < kernels::num_variants; ++v) {
            const kernels::VariantEntry &e = kernels::variants[v];
            KernelInfo info;
            info.name = e.name;
            info.pipeline = "bgemv";
            info.bits = "W" + std::to_string(e.k_w) + "A" + std::to_string(e.k_a);
            info.rows = size_t(e.rows);
            info.cols = size_t(e.cols);
            info.knobs = e.knobs;
            info.isa = isa;
            info.variant = true;
            info.tuned_us = e.tuned_us;
            info.common_us = e.common_us;
            out.push_back(std::move(info));
        }
        return out;
    }();
    return list;
}

int BinaryMatrix::bound_variant(int k_w, size_t rows, size_t cols) {
    // AMQ_VARIANTS=0: no matrix is bound to a variant, the common kernels run
    // everything (read when weights are packed; to compare the two).
    const char *env = std::getenv("AMQ_VARIANTS");
    if (env && std::string(env) == "0") return -1;
    for (int v = 0; v < kernels::num_variants; ++v) {
        const kernels::VariantEntry &e = kernels::variants[v];
        if (e.k_w == k_w && size_t(e.rows) == rows && size_t(e.cols) == cols) return v;
    }
    return -1;
}

KernelLayout BinaryMatrix::packing_layout(int bound) {
    if (bound < 0) return kernel_layout();
    return KernelLayout{kernels::variants[bound].layout, kernels::variants[bound].tile};
}

void BinaryMatrix::bind(int bound) {
    bound_ = bound;
    layout_ok_ = layout_ == packing_layout(bound);
    for (int &v : variant_) v = -1;
    if (bound < 0) return;
    // Every variant of this k_w and shape packed in the same layout, by its k_a.
    const kernels::VariantEntry &b = kernels::variants[bound];
    for (int v = 0; v < kernels::num_variants; ++v) {
        const kernels::VariantEntry &e = kernels::variants[v];
        if (e.k_w == b.k_w && e.rows == b.rows && e.cols == b.cols && e.tile == b.tile &&
            std::strcmp(e.layout, b.layout) == 0 && variant_[e.k_a - 1] < 0)
            variant_[e.k_a - 1] = v;
    }
}

const KernelInfo *BinaryMatrix::variant(int k_a) const {
    if (k_a < 1 || k_a > 4 || variant_[k_a - 1] < 0) return nullptr;
    return &linked_kernels()[std::size(kernels::kernel_list) + size_t(variant_[k_a - 1])];
}

const KernelInfo *BinaryMatrix::variant_for(int k_w, int k_a, size_t rows, size_t cols) {
    BinaryMatrix m;
    m.bind(bound_variant(k_w, rows, cols));
    return m.variant(k_a);
}

BinaryMatrix BinaryMatrix::from_planes(const uint64_t *planes, const float *alpha, int k_w,
                                       size_t rows, size_t cols, const float *bias) {
    const int bound = bound_variant(k_w, rows, cols);
    BinaryMatrix m = from_planes(planes, alpha, k_w, rows, cols, bias, packing_layout(bound));
    m.bind(bound);
    return m;
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
    m.layout_ok_ = l == kernel_layout();  // bind() says it for a variant's layout
    m.tiles_ = (rows + l.tile - 1) / l.tile;
    const WeightStrides ws = weight_strides(l, k_w, m.tiles_, m.words());
    for (int d = 0; d < 4; ++d) {
        const int64_t v = d == 0 ? ws.r : d == 1 ? ws.i : d == 2 ? ws.w : ws.t;
        if (v > INT32_MAX)
            fail("BinaryMatrix: " + std::to_string(rows) + "x" + std::to_string(cols) + " with " +
                 std::to_string(k_w) + " planes is too large for the kernels (a stride of " +
                 std::to_string(v) + " words)");
        m.strides_[d] = int32_t(v);
    }
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
    const int bound = bound_variant(k_w, rows, cols);
    BinaryMatrix m = with_scales(alpha, k_w, rows, cols, bias, packing_layout(bound));
    if (!(m.layout_ == kernel_layout())) {
        // pack_bits_kernel writes the common layout: to planes, then repacked.
        const std::vector<uint64_t> planes = pack_bits(src, k_w, rows, cols);
        return from_planes(planes.data(), alpha, k_w, rows, cols, bias);
    }
    m.bind(bound);
    WeightViews w(m);
    Buffer<float> in(const_cast<float *>(src), int(cols), int(rows), k_w);
    detail::check(kernels::pack_bits_kernel(in, w.W), "pack_bits");
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

namespace {

// The most input bytes (items x padded length x 4) of one quantize_act_batch
// call: its stages run for all the items before the next, which overlaps the
// items' chains of scalar stages but reads every item's x once per pass, so a
// call's inputs should stay in L1 (32 KB on Zen 4, 48 on Zen 5). A longer batch
// takes several calls; a vector of more than half this takes a call of its own.
// Per vector in calls of 64 items against a call each (amq_bench_lm, Zen 5 VM,
// docs/PERFORMANCE.md): 84 against 217 ns at n = 64; in calls of 64 items of
// 1024 values (256 KB) the batch was slower than a call each (897 against 745
// ns), in calls of 8 (32 KB) it is faster (679-690 against 778).
constexpr size_t kBatchQuantizeBytes = 32 * 1024;

// Checks the arguments of quantize_act for `items` vectors of length n (item i
// at x + i * x_stride); `ready` sizes the destination once they pass and returns
// item 0's planes [k_a][words] and scales [k_a], the items' one after another.
// `ternary`: the quantize_act_ternary kernel (k_a = 2, iters unused), item by item.
// The one-vector kernels of the table are the unchecked copies (the manifest's
// unchecked_copies): every check of theirs is made here, and the buffers are
// built from n, k_a and the items alone.
template <typename Ready>
void run_quantize_act(const float *x, size_t n, size_t x_stride, size_t items, int k_a, int iters,
                      Ready ready, bool ternary = false) {
    detail::install_hooks();
    check_bits("quantize_act", "k_a", k_a);
    if (ternary && k_a != 2)
        fail("quantize_act: k_a = " + std::to_string(k_a) +
             " with ternary activations, which have 2 planes (expected 2)");
    if (n == 0) fail("quantize_act: n = 0 (expected a vector of length >= 1)");
    if (n > size_t(1) << 30)
        fail("quantize_act: n = " + std::to_string(n) + " (the kernels take at most 2^30 values)");
    if (iters < 0 || iters > 3)
        fail("quantize_act: iters = " + std::to_string(iters) +
             " is not built (expected 0..3; 0 = greedy)");
    if (!x) fail("quantize_act: x is null");
    if (items > 1 && x_stride < n)
        fail("quantize_act: x_stride = " + std::to_string(x_stride) +
             " is shorter than a vector (n = " + std::to_string(n) + ")");
    if (items == 0) return;
    auto [planes, scales] = ready();
    const size_t words = (n + 63) / 64, item_words = size_t(k_a) * words;
    // The kernels read x padded to a multiple of 64 (the padding is not counted):
    // vectors whose padding is not in x are copied to scratch first, zero-padded.
    const size_t padded = round_up(n, 64);
    const bool copy = padded != n;
    thread_local std::vector<float> scratch;
    // Items i0 .. i0 + m - 1 into scratch, `padded` floats apart.
    auto copy_items = [&](size_t i0, size_t m) {
        if (scratch.size() < m * padded) scratch.resize(m * padded);
        for (size_t i = 0; i < m; ++i) {
            std::memcpy(&scratch[i * padded], x + (i0 + i) * x_stride, n * sizeof(float));
            std::fill(&scratch[i * padded + n], &scratch[(i + 1) * padded], 0.0f);
        }
        return scratch.data();
    };
    auto bytes_of = [&](size_t i) { return reinterpret_cast<uint8_t *>(planes + i * item_words); };
    // Items per batch call: as many as kBatchQuantizeBytes holds, and Halide
    // indexes a buffer in int32.
    const size_t stride = copy ? padded : x_stride;
    const size_t per_call = std::min(kBatchQuantizeBytes / (padded * sizeof(float)),
                                     std::max<size_t>(1, size_t(INT32_MAX) / stride));
    if (ternary || items == 1 || per_call < 2) {  // a call per vector
        const auto kernel =
            ternary ? kernels::quantize_act_ternary : kernels::quantize_act[k_a - 1][iters];
        for (size_t i = 0; i < items; ++i) {
            View<1> xb(copy ? copy_items(i, 1) : x + i * x_stride, {int(padded)});
            View<2> bb(bytes_of(i), {int(words * 8), k_a});
            View<1> sb(scales + i * size_t(k_a), {k_a});
            detail::check(kernel(xb, int(n), bb, sb), "quantize_act");
        }
    } else {
        for (size_t i0 = 0; i0 < items; i0 += per_call) {
            const size_t m = std::min(per_call, items - i0);
            View<2> xb(copy ? copy_items(i0, m) : x + i0 * x_stride, {int(padded), int(m)},
                       {1, int(stride)});
            View<3> bb(bytes_of(i0), {int(words * 8), k_a, int(m)},
                       {1, int(words * 8), int(item_words * 8)});
            View<2> sb(scales + i0 * size_t(k_a), {k_a, int(m)}, {1, k_a});
            detail::check(kernels::quantize_act_batch[k_a - 1][iters](xb, int(n), bb, sb),
                          "quantize_act");
        }
    }
    for (size_t i = 0; i < items; ++i) {
        bool finite = true;
        for (int j = 0; j < k_a; ++j) finite = finite && std::isfinite(scales[i * size_t(k_a) + j]);
        // Ternary scales stay finite with NaN or Inf in x (nothing exceeds a
        // non-finite threshold): its input is checked itself.
        const float *xi = x + i * x_stride;
        for (size_t e = 0; ternary && finite && e < n; ++e) finite = std::isfinite(xi[e]);
        if (!finite)
            fail("quantize_act: the input vector" +
                 (items > 1 ? " of item " + std::to_string(i) : std::string()) + " (length " +
                 std::to_string(n) + ") contains NaN or Inf");
    }
}

}  // namespace

void quantize_act(const float *x, size_t n, int k_a, int iters, BinaryVector &out) {
    run_quantize_act(x, n, n, 1, k_a, iters, [&] {
        out.resize(k_a, n);
        return std::pair<uint64_t *, float *>(out.planes.data(), out.beta.data());
    });
}

void quantize_act_ternary(const float *x, size_t n, BinaryVector &out) {
    run_quantize_act(
        x, n, n, 1, 2, 0,
        [&] {
            out.resize(2, n);
            return std::pair<uint64_t *, float *>(out.planes.data(), out.beta.data());
        },
        true);
}

void quantize_act_ternary(const float *x, size_t n, BinaryBatch &out, size_t b) {
    quantize_act(x, n, 2, 0, out, b, true);
}

void quantize_act(const float *x, size_t n, int k_a, int iters, BinaryBatch &out, size_t b,
                  bool ternary) {
    quantize_act_batch(x, n, n, 1, k_a, iters, out, b, ternary);
}

void quantize_act_batch(const float *x, size_t n, size_t x_stride, size_t items, int k_a,
                        int iters, BinaryBatch &out, size_t first, bool ternary) {
    run_quantize_act(x, n, x_stride, items, k_a, iters, [&] {
        if (out.k != k_a || out.n != n)
            fail("quantize_act: the batch has k = " + std::to_string(out.k) +
                 ", n = " + std::to_string(out.n) + " (expected k_a = " + std::to_string(k_a) +
                 ", n = " + std::to_string(n) + "; size it with BinaryBatch::resize)");
        if (first >= out.batch || items > out.batch - first)
            fail("quantize_act: item " + std::to_string(first + items - 1) +
                 " is past the batch of " + std::to_string(out.batch));
        const size_t stride = size_t(k_a) * out.words();
        if (out.planes.size() < out.batch * stride || out.beta.size() < out.batch * size_t(k_a))
            fail("quantize_act: the batch has " + std::to_string(out.planes.size()) +
                 " words and " + std::to_string(out.beta.size()) + " scales (expected " +
                 std::to_string(out.batch * stride) + " and " +
                 std::to_string(out.batch * size_t(k_a)) + ")");
        return std::pair<uint64_t *, float *>(out.planes.data() + first * stride,
                                              out.beta.data() + first * size_t(k_a));
    }, ternary);
}

namespace {

// The checks every binary product makes on its weights and activation shape;
// `bound` is the variant whose layout the kernels read (-1: the common layout)
// and `layout_ok` whether W is packed in it (BinaryMatrix knows since packing).
void check_product(const char *kernel, const BinaryMatrix &W, int bound, bool layout_ok, int k_a,
                   size_t n) {
    if (W.k_w() == 0) fail(kernel, "the weight matrix is empty (not built)");
    if (!layout_ok) {
        const KernelLayout want =
            bound < 0 ? kernel_layout()
                      : KernelLayout{kernels::variants[bound].layout, kernels::variants[bound].tile};
        fail(kernel, "the matrix is in layout " + W.layout().layout + "/" +
                         std::to_string(W.tile()) + " but the kernels were built for " +
                         want.layout + "/" + std::to_string(want.tile));
    }
    check_bits(kernel, "k_a", k_a);
    // The bgemv kernels the runtime calls are the unchecked copies (the
    // manifest's unchecked_copies): the buffers must hold what the shape says
    // (a moved-from matrix keeps its shape but not its data), and Halide indexes
    // a buffer in int32.
    const size_t tiles = W.tiles(), tile = size_t(W.tile()), kw = size_t(W.k_w());
    if (W.kernel_planes().size() != kw * tiles * tile * W.words() ||
        W.kernel_alpha().size() != kw * tiles * tile || W.kernel_bias().size() != tiles * tile)
        fail(kernel, "the " + std::to_string(W.rows()) + "x" + std::to_string(W.cols()) +
                         " weight matrix holds " + std::to_string(W.kernel_planes().size()) +
                         " plane words, " + std::to_string(W.kernel_alpha().size()) +
                         " scales and " + std::to_string(W.kernel_bias().size()) +
                         " biases (expected " + std::to_string(kw * tiles * tile * W.words()) +
                         ", " + std::to_string(kw * tiles * tile) + " and " +
                         std::to_string(tiles * tile) + "; was it moved from?)");
    if (W.kernel_planes().size() > size_t(INT32_MAX))
        fail(kernel, "the " + std::to_string(W.rows()) + "x" + std::to_string(W.cols()) +
                         " weight matrix has " + std::to_string(W.kernel_planes().size()) +
                         " plane words (the kernels index at most 2^31 - 1)");
    if (n != W.cols())
        fail(kernel, "activation length " + std::to_string(n) + " does not match the " +
                         std::to_string(W.rows()) + "x" + std::to_string(W.cols()) +
                         " weight matrix");
}

// The kernels of a product on a matrix bound to `bound` (variant per k_a in
// `variant`): `one` for a single vector (null: use `many` with a batch of one),
// `many` for batches. Chosen from tables, nothing looked up by name.
struct ProductKernels {
    kernels::bgemv_fn one;
    kernels::bgemm_fn many;
};
ProductKernels product_kernels(int bound, const int (&variant)[4], int k_w, int k_a) {
    const kernels::bgemm_fn *own = bound >= 0 ? kernels::variants[bound].bgemm : nullptr;
    const int v = variant[k_a - 1];
    return {v >= 0 ? kernels::variants[v].bgemv
                   : own ? nullptr : kernels::bgemv[k_w - 1][k_a - 1],
            own ? own[k_a - 1] : kernels::bgemm[k_w - 1][k_a - 1]};
}

// The product of W with B activation vectors (planes [B][k_a][words], scales
// [B][k_a]) into dst: B items of `stride` floats (>= W.rows_padded()), on
// k.one when B is 1 and there is one, else on k.many.
void run_product(const ProductKernels &k, const BinaryMatrix &W, const uint64_t *planes,
                 const float *scales, int k_a, size_t n, size_t B, float *dst, size_t stride,
                 bool par, const char *name) {
    WeightViews w(W);
    View<4> &wb = w.W;
    View<3> &alpha = w.alpha;
    View<2> &bias = w.bias;
    const int tile = W.tile(), tiles = int(W.tiles()), words = int(W.words());
    if (B == 1 && k.one) {
        // One item: bgemv is the same product (and its loop is a little faster).
        View<2> A(planes, {words, k_a});
        View<1> beta(scales, {k_a});
        View<2> yb(dst, {tile, tiles});
        detail::check(k.one(wb, alpha, bias, A, beta, int(n), par, yb), name);
        return;
    }
    View<3> A(planes, {words, k_a, int(B)});
    View<2> beta(scales, {k_a, int(B)});
    View<3> yb(dst, {tile, tiles, int(B)}, {1, tile, int(stride)});
    const int bt = bgemm_batch_tile(
        B, bgemm_max_batch_tile(AMQ_BGEMM_ACCUMULATORS, AMQ_BGEMM_MAX_BATCH_TILE, W.k_w(), k_a));
    detail::check(k.many(wb, alpha, bias, A, beta, int(n), par, bt, yb), name);
}

}  // namespace

void bgemv(const BinaryMatrix &W, const BinaryVector &a, float *y) {
    detail::install_hooks();
    check_product("bgemv", W, W.bound_, W.layout_ok_, a.k, a.n);
    if (a.planes.size() < size_t(a.k) * a.words() || a.beta.size() < size_t(a.k))
        fail("bgemv: activation has " + std::to_string(a.planes.size()) + " words and " +
             std::to_string(a.beta.size()) + " scales (expected " +
             std::to_string(size_t(a.k) * a.words()) + " and " + std::to_string(a.k) + ")");
    if (!y) fail("bgemv: y is null");
    const size_t padded = W.tiles() * size_t(W.tile());
    thread_local std::vector<float> scratch;
    float *dst = y;
    if (padded != W.rows()) {
        if (scratch.size() < padded) scratch.resize(padded);
        dst = scratch.data();
    }
    const bool par = parallel(W.bytes());
    run_product(product_kernels(W.bound_, W.variant_, W.k_w(), a.k), W, a.planes.data(),
                a.beta.data(), a.k, a.n, 1, dst, padded, par, "bgemv");
    if (dst != y) std::memcpy(y, dst, W.rows() * sizeof(float));
}

void bgemm(const BinaryMatrix &W, const BinaryBatch &a, float *y, size_t y_stride) {
    detail::install_hooks();
    check_product("bgemm", W, W.bound_, W.layout_ok_, a.k, a.n);
    const size_t B = a.batch, ka = size_t(a.k);
    if (B == 0) fail("bgemm: the activation batch is empty (expected batch >= 1)");
    if (a.planes.size() < B * ka * a.words() || a.beta.size() < B * ka)
        fail("bgemm: activation batch has " + std::to_string(a.planes.size()) + " words and " +
             std::to_string(a.beta.size()) + " scales (expected " +
             std::to_string(B * ka * a.words()) + " and " + std::to_string(B * ka) + ")");
    if (!y) fail("bgemm: y is null");
    const size_t stride = y_stride ? y_stride : W.rows(), padded = W.rows_padded();
    if (stride < W.rows())
        fail("bgemm: y_stride = " + std::to_string(stride) + " is less than the " +
             std::to_string(W.rows()) + " rows of the weight matrix");
    const bool direct = stride >= padded;
    if ((direct ? stride : padded) * B > size_t(INT32_MAX))
        fail("bgemm: the output of " + std::to_string(B) + " items x " + std::to_string(stride) +
             " floats is too large (at most 2^31 - 1 floats)");
    thread_local std::vector<float> scratch;
    float *dst = y;
    if (!direct) {
        if (scratch.size() < padded * B) scratch.resize(padded * B);
        dst = scratch.data();
    }
    const bool par = parallel(W.bytes() * B);
    run_product(product_kernels(W.bound_, W.variant_, W.k_w(), a.k), W, a.planes.data(),
                a.beta.data(), a.k, a.n, B, dst, direct ? stride : padded, par, "bgemm");
    if (!direct)
        for (size_t b = 0; b < B; ++b)
            std::memcpy(y + b * stride, dst + b * padded, W.rows() * sizeof(float));
}

namespace {

// Memory spanned by a batch view, in floats.
struct Span {
    const float *begin, *end;
};

size_t stride_of(const ConstFloatBatch &v) { return v.stride ? v.stride : v.size; }

// Checks one argument of a cell: non-null, `size` values per item, `batch`
// items, a stride that holds them, and Halide's 32-bit extents.
Span check_cell_arg(const char *kernel, const char *name, const ConstFloatBatch &v, size_t size,
                    const char *size_what, size_t batch, const char *batch_from) {
    // The message is built only on failure: a step must not allocate.
    auto bad = [&](const std::string &what) { fail(kernel, name + what); };
    if (!v.data) bad(".data is null");
    if (v.size != size)
        bad(" has " + std::to_string(v.size) + " values per item (expected " + size_what + " = " +
            std::to_string(size) + ")");
    if (v.batch != batch)
        bad(" has batch " + std::to_string(v.batch) + " (expected " + std::to_string(batch) +
            ", the batch of " + batch_from + ")");
    const size_t stride = stride_of(v);
    if (stride < v.size)
        bad(" has stride " + std::to_string(stride) + ", less than its " + std::to_string(v.size) +
            " values per item");
    const size_t span = (batch - 1) * stride + size;
    if (span > size_t(INT32_MAX) || stride > size_t(INT32_MAX))
        bad(" spans " + std::to_string(span) + " floats (at most 2^31 - 1)");
    return {v.data, v.data + span};
}

ConstFloatBatch as_const(const FloatBatch &v) { return {v.data, v.batch, v.size, v.stride}; }

bool overlap(const Span &a, const Span &b) { return a.begin < b.end && b.begin < a.end; }

void check_apart(const char *kernel, const char *out, const Span &o, const char *in,
                 const Span &i) {
    if (overlap(o, i))
        fail(kernel, std::string(out) + " overlaps " + in +
                         " (outputs must not share memory with the other arguments)");
}

// A 2-D f32 buffer over a batch view: dim 0 the item's values, dim 1 the items.
Buffer<float> batch_buffer(const ConstFloatBatch &v) {
    halide_dimension_t d[2] = {{0, int(v.size), 1}, {0, int(v.batch), int(stride_of(v))}};
    return Buffer<float>(const_cast<float *>(v.data), 2, d);
}

}  // namespace

void lstm_cell(ConstFloatBatch gx, ConstFloatBatch gh, ConstFloatBatch c_prev, FloatBatch h_out,
               FloatBatch c_out) {
    detail::install_hooks();
    const char *K = "lstm_cell";
    if (!c_prev.data) fail("lstm_cell: c_prev.data is null");
    const size_t H = c_prev.size, B = c_prev.batch;
    if (H == 0 || B == 0)
        fail("lstm_cell: c_prev has " + std::to_string(B) + " items of " + std::to_string(H) +
             " values (expected hidden size >= 1 and batch >= 1)");
    if (4 * H > size_t(INT32_MAX))
        fail("lstm_cell: hidden size " + std::to_string(H) + " too large");
    const Span sc =
        check_cell_arg(K, "c_prev", c_prev, H, "hidden, the size of c_prev", B, "c_prev");
    const Span sx = check_cell_arg(K, "gx", gx, 4 * H, "4 x hidden", B, "c_prev");
    const Span sh = check_cell_arg(K, "gh", gh, 4 * H, "4 x hidden", B, "c_prev");
    const Span so = check_cell_arg(K, "h_out", as_const(h_out), H, "hidden", B, "c_prev");
    const Span sn = check_cell_arg(K, "c_out", as_const(c_out), H, "hidden", B, "c_prev");
    const bool in_place =
        c_out.data == c_prev.data && stride_of(as_const(c_out)) == stride_of(c_prev);
    check_apart(K, "h_out", so, "gx", sx);
    check_apart(K, "h_out", so, "gh", sh);
    check_apart(K, "h_out", so, "c_prev", sc);
    check_apart(K, "h_out", so, "c_out", sn);
    check_apart(K, "c_out", sn, "gx", sx);
    check_apart(K, "c_out", sn, "gh", sh);
    if (!in_place)
        check_apart(K, "c_out", sn, "c_prev (in place it must be c_prev itself, same stride)", sc);
    Buffer<float> hb = batch_buffer(as_const(h_out)), cb = batch_buffer(as_const(c_out));
    detail::check(
        kernels::lstm_cell(batch_buffer(gx), batch_buffer(gh), batch_buffer(c_prev), hb, cb), K);
}

void gru_cell(ConstFloatBatch gx, ConstFloatBatch gh, ConstFloatBatch h_prev, FloatBatch h_out) {
    detail::install_hooks();
    const char *K = "gru_cell";
    if (!h_prev.data) fail("gru_cell: h_prev.data is null");
    const size_t H = h_prev.size, B = h_prev.batch;
    if (H == 0 || B == 0)
        fail("gru_cell: h_prev has " + std::to_string(B) + " items of " + std::to_string(H) +
             " values (expected hidden size >= 1 and batch >= 1)");
    if (3 * H > size_t(INT32_MAX))
        fail("gru_cell: hidden size " + std::to_string(H) + " too large");
    const Span sp =
        check_cell_arg(K, "h_prev", h_prev, H, "hidden, the size of h_prev", B, "h_prev");
    const Span sx = check_cell_arg(K, "gx", gx, 3 * H, "3 x hidden", B, "h_prev");
    const Span sh = check_cell_arg(K, "gh", gh, 3 * H, "3 x hidden", B, "h_prev");
    const Span so = check_cell_arg(K, "h_out", as_const(h_out), H, "hidden", B, "h_prev");
    const bool in_place =
        h_out.data == h_prev.data && stride_of(as_const(h_out)) == stride_of(h_prev);
    check_apart(K, "h_out", so, "gx", sx);
    check_apart(K, "h_out", so, "gh", sh);
    if (!in_place)
        check_apart(K, "h_out", so, "h_prev (in place it must be h_prev itself, same stride)", sp);
    Buffer<float> hb = batch_buffer(as_const(h_out));
    detail::check(kernels::gru_cell(batch_buffer(gx), batch_buffer(gh), batch_buffer(h_prev), hb),
                  K);
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

size_t float_panel() { return AMQ_F32_PANEL; }

FloatMatrix FloatMatrix::from_rows(const float *M, size_t rows, size_t cols, const float *bias) {
    return from_rows(M, rows, cols, bias, float_panel());
}

FloatMatrix FloatMatrix::from_rows(const float *M, size_t rows, size_t cols, const float *bias,
                                   size_t panel) {
    if (rows == 0 || cols == 0)
        fail("FloatMatrix: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is empty (expected rows >= 1 and cols >= 1)");
    if (!M) fail("FloatMatrix: M is null");
    if (panel == 0 || panel > 256)
        fail("FloatMatrix: panel = " + std::to_string(panel) + " (expected 1..256)");
    // The kernel's buffer extents and strides are int32.
    if (float_panels_size(rows, cols, panel) > size_t(INT32_MAX))
        fail("FloatMatrix: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is too large (at most 2^31 - 1 packed floats)");
    FloatMatrix m;
    m.rows_ = rows;
    m.cols_ = cols;
    m.panel_ = panel;
    m.packed_.resize(float_panels_size(rows, cols, panel));
    pack_float_panels(M, rows, cols, panel, m.packed_.data());
    m.bias_ = bias ? std::vector<float>(bias, bias + rows) : std::vector<float>(rows, 0.0f);
    return m;
}

void f32_gemv(const FloatMatrix &M, const float *x, size_t x_size, float *y) {
    detail::install_hooks();
    if (M.rows() == 0) fail("f32_gemv: M is empty (build it with FloatMatrix::from_rows)");
    if (!x || !y) fail("f32_gemv: x and y must not be null");
    if (x_size != M.cols())
        fail("f32_gemv: x has " + std::to_string(x_size) + " values, expected " +
             std::to_string(M.cols()) + " (the matrix's columns)");
    if (M.panel() != float_panel())
        fail("f32_gemv: M is packed in panels of " + std::to_string(M.panel()) +
             " rows, the kernel reads panels of " + std::to_string(float_panel()));
    const int rows = int(M.rows()), cols = int(M.cols());
    View<3> Mb(M.packed().data(), {int(M.panel()), cols, int(M.panels())});  // dense panels
    View<1> xb(x, {cols});
    View<1> bb(M.bias().data(), {rows});
    View<1> yb(y, {rows});
    detail::check(kernels::f32_gemv(Mb, xb, bb, parallel(M.packed().size() * sizeof(float)), yb),
                  "f32_gemv");
}

void f32_gemv(const float *M, size_t rows, size_t cols, const float *x, const float *bias,
              float *y) {
    if (rows == 0 || cols == 0)
        fail("f32_gemv: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             " is empty (expected rows >= 1 and cols >= 1)");
    if (!M || !x || !y) fail("f32_gemv: M, x and y must not be null");
    thread_local FloatMatrix packed;
    packed = FloatMatrix::from_rows(M, rows, cols, bias);
    f32_gemv(packed, x, cols, y);
}

// ---- Fused recurrent steps ----------------------------------------------------

bool fused_step_built(int k_w, int k_a, int iters, size_t batch) {
    if (k_w < 1 || k_w > 4 || k_a < 1 || k_a > 4 || batch == 0) return false;
#if AMQ_HAVE_FUSED_STEPS
    if (batch == 1)
        return iters == kernels::fused_step_iters &&
               kernels::lstm_step[k_w - 1][k_a - 1] != nullptr;
#endif
#if AMQ_HAVE_FUSED_BATCH_STEPS
    if (batch > 1)
        return iters == kernels::fused_step_iters &&
               kernels::lstm_step_batch[k_w - 1][k_a - 1] != nullptr;
#endif
    (void)iters;
    return false;
}

StepChoice step_choice(const StepChoiceEntry *entries, const char *cell, int k_w, int k_a,
                       size_t hidden, size_t batch, StepCall call) {
    StepChoice c;
    if (!entries || !cell || hidden == 0 || batch == 0) return c;
    const char *call_name = call == StepCall::run ? "run" : "step";
    double best = 0;
    for (const StepChoiceEntry *e = entries; e->cell; ++e) {
        if (std::strcmp(e->cell, cell) != 0 || e->k_w != k_w || e->k_a != k_a ||
            std::strcmp(e->call, call_name) != 0 || (e->batch == 1) != (batch == 1))
            continue;
        const double d = std::fabs(std::log2(double(hidden) / e->hidden)) +
                         std::fabs(std::log2(double(batch) / e->batch));
        if (!c.entry || d < best) {
            c.entry = e;
            c.fused = e->fused;
            best = d;
        }
    }
    return c;
}

StepChoice step_choice(const char *cell, int k_w, int k_a, size_t hidden, size_t batch,
                       StepCall call) {
    return step_choice(step_choices(), cell, k_w, k_a, hidden, batch, call);
}

const StepChoiceEntry *step_choices() { return kernels::step_choices; }

bool fused_full_step_built(int k_w, int k_a, int iters) {
    if (k_w < 1 || k_w > 4 || k_a < 1 || k_a > 4) return false;
#if AMQ_HAVE_FUSED_FULL_STEPS
    return iters == kernels::fused_step_iters &&
           kernels::lstm_full_step[k_w - 1][k_a - 1] != nullptr;
#else
    (void)iters;
    return false;
#endif
}

namespace {

// The largest hidden size the fused step kernels take (their `hidden` input's range).
constexpr int kMaxFusedHidden = 1 << 24;

}  // namespace

bool fused_step_fits(const BinaryMatrix &W_hh) {
    // What the kernels' own checks would refuse (the runtime calls their
    // unchecked copies): Halide indexes each buffer in int32.
    return W_hh.cols() <= size_t(kMaxFusedHidden) &&
           W_hh.kernel_planes().size() <= size_t(INT32_MAX);
}

// A fused step bound to its weights, batch and state: every view of the kernel
// call built once; run() points the per-step ones (h_q, gx or x_t, the planes
// and scales of h_t) at the step's memory. The one-sequence kernels take A,
// beta, gx, the planes and scales and the state one dimension lower than the
// _batch kernels: both sets are here, the form picks one.
struct FusedStep::Binding {
    enum Form { one, batch, full };
    const char *K = "";
    bool lstm = true;
    Form form = one;
    int kw = 0, ka = 0, G = 4;
    size_t H = 0, B = 0, item_words = 0;
    int bt = 1;  // batch tile of the _batch kernels
    WeightViews hh, ih;  // W_hh; W_ih (full)
    int I = 0;  // full: input size
    // one / full
    View<2> A1, planes1;
    View<1> beta1, scales1, in1, c1, h1;
    // batch
    View<3> A3, planes3;
    View<2> beta2, scales2, gx2, c2, h2;
};

namespace {

using Binding = FusedStep::Binding;

// Checks a fused step with G gates on W_hh (and W_ih for a full step) for
// `batch` items of h_q with k_a planes of n values and gx items gx_stride apart,
// and builds its views: every check the kernel's own would make that does not
// depend on the step's memory (the runtime calls the kernels' _unchecked
// copies, which have none); run_bound() makes the others.
void bind_step(Binding &b, const char *K, bool lstm, const BinaryMatrix &W, const BinaryMatrix *Wi,
               int k_a, size_t n, size_t B, size_t gx_stride, float *c, float *h, int iters) {
    detail::install_hooks();
    static const KernelLayout common = kernel_layout();
    const int G = lstm ? 4 : 3;
    check_product(K, W, -1, W.layout() == common, k_a, n);  // the common layout only
    const size_t H = W.cols();
    if (Wi) {
        // x_t is quantized as h is (h_q's k) and multiplied with W_ih: the
        // kernels take one k_w for both, the common layout, and batch 1.
        check_product(K, *Wi, -1, Wi->layout() == common, k_a, Wi->cols());
        if (Wi->rows() != W.rows() || Wi->k_w() != W.k_w())
            fail(K, "W_ih is " + std::to_string(Wi->rows()) + "x" + std::to_string(Wi->cols()) +
                        " with k_w = " + std::to_string(Wi->k_w()) + " (expected " +
                        std::to_string(W.rows()) +
                        " rows, as W_hh, and k_w = " + std::to_string(W.k_w()) + ")");
        if (!fused_step_fits(*Wi))
            fail(K, "W_ih (input " + std::to_string(Wi->cols()) +
                        ") is larger than the fused kernels take (input at most " +
                        std::to_string(kMaxFusedHidden) + ", at most 2^31 - 1 words)");
        if (B != 1) fail(K, "h_q has batch " + std::to_string(B) + " (a full step is batch 1)");
        if (!fused_full_step_built(W.k_w(), k_a, iters))
            fail(K, "no fused kernel for W" + std::to_string(W.k_w()) + "A" + std::to_string(k_a) +
                        " with " + std::to_string(iters) +
                        " alternating cycles (see fused_full_step_built)");
    }
    if (W.rows() != size_t(G) * H)
        fail(K, "W_hh is " + std::to_string(W.rows()) + "x" + std::to_string(H) + " (expected " +
                    std::to_string(G) + " x hidden = " + std::to_string(G * H) +
                    " rows for hidden " + std::to_string(H) + ")");
    if (!fused_step_fits(W))
        fail(K, "W_hh (hidden " + std::to_string(H) + ", " +
                    std::to_string(W.kernel_planes().size()) + " words) is larger than the fused " +
                    "kernels take (hidden at most " + std::to_string(kMaxFusedHidden) +
                    ", at most 2^31 - 1 words)");
    if (B == 0) fail(K, "h_q has batch 0 (expected at least 1)");
    if (!Wi && !fused_step_built(W.k_w(), k_a, iters, B))
        fail(K, "no fused kernel for W" + std::to_string(W.k_w()) + "A" + std::to_string(k_a) +
                    " with " + std::to_string(iters) + " alternating cycles" +
                    (B > 1 ? " and batch " + std::to_string(B) : std::string()) +
                    " (see fused_step_built)");
    const size_t words = (H + 63) / 64, item_words = size_t(k_a) * words;
    if (!Wi && gx_stride < size_t(G) * H)
        fail(K, "gx has " + std::to_string(gx_stride) + " floats per item (expected at least " +
                    std::to_string(G) + " x hidden = " + std::to_string(G * H) + ")");
    // Halide indexes each buffer in int32 (H <= 2^24 keeps the others in range).
    uint64_t span = 0;
    if (__builtin_mul_overflow(uint64_t(B), std::max<uint64_t>(gx_stride, item_words * 8), &span) ||
        span > uint64_t(INT32_MAX))
        fail(K, "batch " + std::to_string(B) + " with " + std::to_string(gx_stride) +
                    " floats of gx per item is more than the kernels index (2^31 - 1 elements)");
    b.K = K;
    b.lstm = lstm;
    b.form = Wi ? Binding::full : B == 1 ? Binding::one : Binding::batch;
    b.kw = W.k_w();
    b.ka = k_a;
    b.G = G;
    b.H = H;
    b.B = B;
    b.item_words = item_words;
    const int iw = int(words), Hi = int(H);
    b.hh.set(W);
    // The per-step memory is not known yet: null until run_bound points them.
    const uint64_t *no_words = nullptr;
    const uint8_t *no_bytes = nullptr;
    const float *no_floats = nullptr;
    if (b.form == Binding::batch) {
        const int bi = int(B);
        b.A3.set(no_words, {iw, k_a, bi});
        b.beta2.set(no_floats, {k_a, bi});
        b.gx2.set(no_floats, {int(gx_stride), bi});
        b.planes3.set(no_bytes, {iw * 8, k_a, bi});
        b.scales2.set(no_floats, {k_a, bi});
        if (c) b.c2.set(c, {Hi, bi});
        b.h2.set(h, {Hi, bi});
        b.bt = bgemm_batch_tile(
            B, bgemm_max_batch_tile(AMQ_BGEMM_ACCUMULATORS, AMQ_BGEMM_MAX_BATCH_TILE, W.k_w(), k_a));
    } else {
        b.A1.set(no_words, {iw, k_a});
        b.beta1.set(no_floats, {k_a});
        b.planes1.set(no_bytes, {iw * 8, k_a});
        b.scales1.set(no_floats, {k_a});
        if (c) b.c1.set(c, {Hi});
        b.h1.set(h, {Hi});
        if (Wi) {
            b.I = int(Wi->cols());
            b.ih.set(*Wi);
            b.in1.set(no_floats, {b.I});
        } else {
            b.in1.set(no_floats, {int(std::min(gx_stride, size_t(INT32_MAX)))});
        }
    }
}

// The kernel of the binding's cell, bits and form on its views.
int call_bound(Binding &b) {
    const int kw = b.kw - 1, ka = b.ka - 1, H = int(b.H);
    switch (b.form) {
        case Binding::one:
#if AMQ_HAVE_FUSED_STEPS
            return b.lstm ? kernels::lstm_step[kw][ka](b.hh.W, b.hh.alpha, b.hh.bias, b.A1, b.beta1,
                                                       b.in1, b.c1, H, b.h1, b.c1, b.planes1,
                                                       b.scales1)
                          : kernels::gru_step[kw][ka](b.hh.W, b.hh.alpha, b.hh.bias, b.A1, b.beta1,
                                                      b.in1, b.h1, H, b.h1, b.planes1, b.scales1);
#else
            break;
#endif
        case Binding::batch:
#if AMQ_HAVE_FUSED_BATCH_STEPS
            return b.lstm ? kernels::lstm_step_batch[kw][ka](b.hh.W, b.hh.alpha, b.hh.bias, b.A3,
                                                             b.beta2, b.gx2, b.c2, H, b.bt, b.h2,
                                                             b.c2, b.planes3, b.scales2)
                          : kernels::gru_step_batch[kw][ka](b.hh.W, b.hh.alpha, b.hh.bias, b.A3,
                                                            b.beta2, b.gx2, b.h2, H, b.bt, b.h2,
                                                            b.planes3, b.scales2);
#else
            break;
#endif
        case Binding::full:
#if AMQ_HAVE_FUSED_FULL_STEPS
            return b.lstm ? kernels::lstm_full_step[kw][ka](
                                b.hh.W, b.hh.alpha, b.hh.bias, b.A1, b.beta1, b.c1, H, b.ih.W,
                                b.ih.alpha, b.ih.bias, b.in1, b.I, b.h1, b.c1, b.planes1, b.scales1)
                          : kernels::gru_full_step[kw][ka](
                                b.hh.W, b.hh.alpha, b.hh.bias, b.A1, b.beta1, b.h1, H, b.ih.W,
                                b.ih.alpha, b.ih.bias, b.in1, b.I, b.h1, b.planes1, b.scales1);
#else
            break;
#endif
    }
    (void)kw, (void)ka, (void)H;
    return -1;  // (not built: bind_step refused it first)
}

// One step on a binding: h_q (the bound k, hidden and batch) and `in` (gx, or
// x_t for a full step) in, the planes and scales of h_t out in `next`.
void run_bound(Binding &b, const BinaryBatch &hq, const float *in, BinaryBatch &next) {
    const char *K = b.K;
    const size_t B = b.B, ka = size_t(b.ka);
    if (hq.k != b.ka || hq.n != b.H || hq.batch != B)
        fail(K, "h_q has k = " + std::to_string(hq.k) + ", n = " + std::to_string(hq.n) +
                    " and batch " + std::to_string(hq.batch) + " (the step was bound to k = " +
                    std::to_string(b.ka) + ", hidden " + std::to_string(b.H) + " and batch " +
                    std::to_string(B) + ")");
    if (hq.planes.size() < B * b.item_words || hq.beta.size() < B * ka)
        fail(K, "h_q has " + std::to_string(hq.planes.size()) + " words and " +
                    std::to_string(hq.beta.size()) + " scales (expected " +
                    std::to_string(B * b.item_words) + " and " + std::to_string(B * ka) +
                    " for batch " + std::to_string(B) + ")");
    if (!in) fail(K, b.form == Binding::full ? "x is null" : "gx is null");
    if (&next == &hq) fail(K, "h_q_next must not be h_q (h_q is read while it is written)");
    next.resize(b.ka, b.H, B);
    const uint8_t *bytes = reinterpret_cast<const uint8_t *>(next.planes.data());
    if (b.form == Binding::batch) {
        b.A3.point(hq.planes.data());
        b.beta2.point(hq.beta.data());
        b.gx2.point(in);
        b.planes3.point(bytes);
        b.scales2.point(next.beta.data());
    } else {
        b.A1.point(hq.planes.data());
        b.beta1.point(hq.beta.data());
        b.in1.point(in);
        b.planes1.point(bytes);
        b.scales1.point(next.beta.data());
    }
    detail::check(call_bound(b), K);
    for (size_t j = 0; j < B * ka; ++j)
        if (!std::isfinite(next.beta[j]))
            fail(K, "h_t (hidden " + std::to_string(b.H) +
                        (B > 1 ? ", batch item " + std::to_string(j / ka) : std::string()) +
                        ") contains NaN or Inf" +
                        (b.form == Binding::full ? " (from x_t or the state)" : ""));
}

void check_lstm_state(const char *K, const float *c, const float *h) {
    if (!c || !h) fail(K, "c and h must not be null");
    if (c == h) fail(K, "c and h must be different buffers");
}

void check_gru_state(const char *K, const float *h) {
    if (!h) fail(K, "h must not be null");
}

}  // namespace

FusedStep::FusedStep() = default;
FusedStep::FusedStep(FusedStep &&) noexcept = default;
FusedStep &FusedStep::operator=(FusedStep &&) noexcept = default;
FusedStep::~FusedStep() = default;

FusedStep FusedStep::lstm(const BinaryMatrix &W_hh, int k_a, size_t batch, size_t gx_stride,
                          float *c, float *h, int iters) {
    check_lstm_state("lstm_step", c, h);
    FusedStep s;
    s.b_ = std::make_unique<Binding>();
    bind_step(*s.b_, "lstm_step", true, W_hh, nullptr, k_a, W_hh.cols(), batch, gx_stride, c, h,
              iters);
    return s;
}

FusedStep FusedStep::gru(const BinaryMatrix &W_hh, int k_a, size_t batch, size_t gx_stride,
                         float *h, int iters) {
    check_gru_state("gru_step", h);
    FusedStep s;
    s.b_ = std::make_unique<Binding>();
    bind_step(*s.b_, "gru_step", false, W_hh, nullptr, k_a, W_hh.cols(), batch, gx_stride,
              nullptr, h, iters);
    return s;
}

FusedStep FusedStep::lstm_full(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, int k_a,
                               float *c, float *h, int iters) {
    check_lstm_state("lstm_full_step", c, h);
    FusedStep s;
    s.b_ = std::make_unique<Binding>();
    bind_step(*s.b_, "lstm_full_step", true, W_hh, &W_ih, k_a, W_hh.cols(), 1, 0, c, h, iters);
    return s;
}

FusedStep FusedStep::gru_full(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, int k_a,
                              float *h, int iters) {
    check_gru_state("gru_full_step", h);
    FusedStep s;
    s.b_ = std::make_unique<Binding>();
    bind_step(*s.b_, "gru_full_step", false, W_hh, &W_ih, k_a, W_hh.cols(), 1, 0, nullptr, h,
              iters);
    return s;
}

void FusedStep::run(const BinaryBatch &h_q, const float *in, BinaryBatch &h_q_next) const {
    if (!b_) fail("FusedStep::run: the step is empty (default-constructed or moved from)");
    run_bound(*b_, h_q, in, h_q_next);
}

// The free functions bind on the stack for one call.
void lstm_step(const BinaryMatrix &W_hh, const BinaryBatch &h_q, const float *gx,
               size_t gx_stride, float *c, float *h, BinaryBatch &h_q_next, int iters) {
    check_lstm_state("lstm_step", c, h);
    Binding b;
    bind_step(b, "lstm_step", true, W_hh, nullptr, h_q.k, h_q.n, h_q.batch, gx_stride, c, h,
              iters);
    run_bound(b, h_q, gx, h_q_next);
}

void gru_step(const BinaryMatrix &W_hh, const BinaryBatch &h_q, const float *gx,
              size_t gx_stride, float *h, BinaryBatch &h_q_next, int iters) {
    check_gru_state("gru_step", h);
    Binding b;
    bind_step(b, "gru_step", false, W_hh, nullptr, h_q.k, h_q.n, h_q.batch, gx_stride, nullptr,
              h, iters);
    run_bound(b, h_q, gx, h_q_next);
}

void lstm_full_step(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, const float *x,
                    const BinaryBatch &h_q, float *c, float *h, BinaryBatch &h_q_next,
                    int iters) {
    check_lstm_state("lstm_full_step", c, h);
    Binding b;
    bind_step(b, "lstm_full_step", true, W_hh, &W_ih, h_q.k, h_q.n, h_q.batch, 0, c, h, iters);
    run_bound(b, h_q, x, h_q_next);
}

void gru_full_step(const BinaryMatrix &W_ih, const BinaryMatrix &W_hh, const float *x,
                   const BinaryBatch &h_q, float *h, BinaryBatch &h_q_next, int iters) {
    check_gru_state("gru_full_step", h);
    Binding b;
    bind_step(b, "gru_full_step", false, W_hh, &W_ih, h_q.k, h_q.n, h_q.batch, 0, nullptr, h,
              iters);
    run_bound(b, h_q, x, h_q_next);
}

}  // namespace amq
