// Kernels written by `amq generate` for another CPU, checked on that CPU (run
// under qemu-user by tests/aarch64/run_kernel_check.sh) against the scalar
// references: pack_bits_kernel, quantize_act (k_a 2 and 3, T = 2), bgemv
// W2A2 and W3A3 and f32_gemv, on shapes that are not multiples of the tile or of
// 64. Prints one line per check and exits 1 if any differs.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "HalideBuffer.h"
#include "amq/float_panels.h"
#include "amq/reference.h"
#include "amq/weight_layout.h"
#include "amq_kernels.h"  // every kernel, AMQ_GENERATED_LAYOUT and AMQ_GENERATED_TILE

using Halide::Runtime::Buffer;

namespace {

int checks = 0, failures = 0;
std::string halide_message;

// Halide's errors become a failed check instead of abort().
void on_halide_error(void *, const char *msg) { halide_message = msg; }

void report(bool ok, const std::string &what, const std::string &detail = "") {
    ++checks;
    if (!ok) ++failures;
    std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
                detail.c_str());
}

// A kernel's return code: 0, or a failed check naming the kernel and Halide's message.
bool called(int rc, const std::string &what) {
    if (rc == 0) return true;
    report(false, what, "kernel returned " + std::to_string(rc) + ": " + halide_message);
    halide_message.clear();
    return false;
}

std::vector<float> normal(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float &x : v) x = d(g);
    return v;
}

// +1/-1 codes [k][rows][n], as int8 (reference) and float (pack_bits input;
// some are 0.0f, which packs as +1 like the reference's sign(0)).
void random_codes(int k, size_t rows, size_t n, uint32_t seed, std::vector<int8_t> &codes,
                  std::vector<float> &as_float) {
    std::mt19937 g(seed);
    codes.resize(size_t(k) * rows * n);
    as_float.resize(codes.size());
    for (size_t e = 0; e < codes.size(); ++e) {
        const uint32_t r = g() % 8;
        codes[e] = r < 4 ? int8_t(1) : int8_t(-1);
        as_float[e] = r == 0 ? 0.0f : r < 4 ? 0.5f + float(r) : -1.0f - float(r);
    }
}

// The weight layout the kernels were generated for (amq/weight_layout.h).
struct Layout {
    int tile = AMQ_GENERATED_TILE;
    size_t tiles = 0, words = 0;
    int k = 0;
    amq::LayoutStrides<int64_t> s{};
    Layout(int k_, size_t rows, size_t n) : k(k_) {
        tiles = (rows + size_t(tile) - 1) / size_t(tile);
        words = amq::ref::words_for(n);
        if (!amq::layout_strides<int64_t>(AMQ_GENERATED_LAYOUT, tile, k, int64_t(words),
                                          int64_t(tiles), s)) {
            std::printf("FAIL unknown layout %s\n", AMQ_GENERATED_LAYOUT);
            std::exit(1);
        }
    }
    size_t size() const { return size_t(k) * tiles * size_t(tile) * words; }
    size_t offset(size_t row, int i, size_t w) const {
        const size_t t = row / size_t(tile), r = row % size_t(tile);
        return size_t(s.r * int64_t(r) + s.i * i + s.w * int64_t(w) + s.t * int64_t(t));
    }
    Buffer<uint64_t> buffer(uint64_t *data) const {
        halide_dimension_t d[4] = {{0, tile, int32_t(s.r)},
                                   {0, k, int32_t(s.i)},
                                   {0, int32_t(words), int32_t(s.w)},
                                   {0, int32_t(tiles), int32_t(s.t)}};
        return Buffer<uint64_t>(data, 4, d);
    }
};

std::string shape(size_t rows, size_t n) { return std::to_string(rows) + "x" + std::to_string(n); }

void check_pack_bits(int k, size_t rows, size_t n, uint32_t seed) {
    const std::string what = "pack_bits_kernel k=" + std::to_string(k) + " " + shape(rows, n);
    std::vector<int8_t> codes;
    std::vector<float> src;
    random_codes(k, rows, n, seed, codes, src);
    const Layout l(k, rows, n);
    std::vector<uint64_t> W(l.size(), ~0ull);  // the kernel must write every word
    Buffer<float> in(src.data(), int(n), int(rows), k);
    Buffer<uint64_t> out = l.buffer(W.data());
    if (!called(amq_pack_bits_kernel(in, out), what)) return;
    const std::vector<uint64_t> expect = amq::ref::pack_planes(codes.data(), k, rows, n);
    size_t bad = 0;
    for (size_t row = 0; row < l.tiles * size_t(l.tile); ++row)
        for (int i = 0; i < k; ++i)
            for (size_t w = 0; w < l.words; ++w) {
                const uint64_t e = row < rows ? expect[(size_t(i) * rows + row) * l.words + w] : 0;
                bad += W[l.offset(row, i, w)] != e;
            }
    report(bad == 0, what, bad ? std::to_string(bad) + " words differ" : "");
}

// quantize_act against ref::alternating: scales within 1e-5 relative, codes equal,
// padding bits 0.
void check_quantize_act(int k, std::vector<float> x, const std::string &label) {
    const size_t n = x.size(), words = amq::ref::words_for(n);
    const std::string what =
        "quantize_act_a" + std::to_string(k) + "_t2 n=" + std::to_string(n) + " " + label;
    std::vector<float> padded(words * 64, 0.0f);
    std::memcpy(padded.data(), x.data(), n * sizeof(float));
    std::vector<uint64_t> planes(size_t(k) * words, ~0ull);
    std::vector<float> beta(size_t(k), NAN);
    Buffer<float> xb(padded.data(), int(padded.size()));
    Buffer<uint8_t> bytes(reinterpret_cast<uint8_t *>(planes.data()), int(words * 8), k);
    Buffer<float> bb(beta.data(), k);
    const int rc = k == 2 ? amq_quantize_act_a2_t2(xb, int(n), bytes, bb)
                          : amq_quantize_act_a3_t2(xb, int(n), bytes, bb);
    if (!called(rc, what)) return;
    const amq::ref::Quantized q = amq::ref::quantize_act(x.data(), n, k, 2);
    double amax = 0;
    for (double a : q.alpha) amax = std::max(amax, std::fabs(a));
    std::string detail;
    for (int j = 0; j < k; ++j)
        if (!(std::fabs(beta[size_t(j)] - q.alpha[size_t(j)]) <= 1e-5 * amax + 1e-30))
            detail += "beta[" + std::to_string(j) + "] " + std::to_string(beta[size_t(j)]) +
                      " vs " + std::to_string(q.alpha[size_t(j)]) + "; ";
    std::vector<int8_t> codes(n);
    for (int j = 0; j < k; ++j) {
        amq::ref::unpack_row(planes.data() + size_t(j) * words, n, codes.data());
        if (std::memcmp(codes.data(), q.codes.data() + size_t(j) * n, n) != 0)
            detail += "codes of plane " + std::to_string(j) + " differ; ";
        if (n % 64 && (planes[size_t(j) * words + words - 1] >> (n % 64)) != 0)
            detail += "padding bits of plane " + std::to_string(j) + " set; ";
    }
    report(detail.empty(), what, detail);
}

// bgemv against ref::binary_gemv: weights placed in the kernel layout, activations
// quantized by the reference, a bias; |y - ref| <= 1e-5 scale + 1e-6 per row.
void check_bgemv(int kw, int ka, size_t rows, size_t n, uint32_t seed) {
    const std::string what =
        "bgemv_w" + std::to_string(kw) + "a" + std::to_string(ka) + " " + shape(rows, n);
    std::vector<int8_t> wcodes;
    std::vector<float> unused;
    random_codes(kw, rows, n, seed, wcodes, unused);
    const std::vector<uint64_t> planes = amq::ref::pack_planes(wcodes.data(), kw, rows, n);
    const std::vector<float> alpha = normal(rows * size_t(kw), seed + 1),
                             bias = normal(rows, seed + 2), x = normal(n, seed + 3);
    const amq::ref::Quantized q = amq::ref::quantize_act(x.data(), n, ka, 2);
    const std::vector<uint64_t> A = amq::ref::pack_planes(q.codes.data(), ka, 1, n);
    std::vector<float> beta(q.alpha.begin(), q.alpha.end());

    const Layout l(kw, rows, n);
    const size_t tile = size_t(l.tile), padded_rows = l.tiles * tile;
    std::vector<uint64_t> W(l.size(), 0);
    std::vector<float> ka_alpha(l.tiles * size_t(kw) * tile, 0.0f), kb(padded_rows, 0.0f);
    for (size_t r = 0; r < rows; ++r) {
        for (int i = 0; i < kw; ++i) {
            for (size_t w = 0; w < l.words; ++w)
                W[l.offset(r, i, w)] = planes[(size_t(i) * rows + r) * l.words + w];
            ka_alpha[((r / tile) * size_t(kw) + size_t(i)) * tile + r % tile] =
                alpha[r * size_t(kw) + size_t(i)];
        }
        kb[r] = bias[r];
    }
    std::vector<float> y(padded_rows, NAN);
    Buffer<uint64_t> wb = l.buffer(W.data());
    Buffer<float> ab(ka_alpha.data(), int(tile), kw, int(l.tiles));
    Buffer<float> bb(kb.data(), int(tile), int(l.tiles));
    Buffer<uint64_t> Ab(const_cast<uint64_t *>(A.data()), int(l.words), ka);
    Buffer<float> betab(beta.data(), ka);
    Buffer<float> yb(y.data(), int(tile), int(l.tiles));
    const int rc = kw == 2 ? amq_bgemv_w2a2(wb, ab, bb, Ab, betab, int(n), false, yb)
                           : amq_bgemv_w3a3(wb, ab, bb, Ab, betab, int(n), false, yb);
    if (!called(rc, what)) return;
    const std::vector<double> expect = amq::ref::binary_gemv(
        planes.data(), alpha.data(), kw, rows, A.data(), beta.data(), ka, n, bias.data());
    size_t bad = 0;
    std::string detail;
    for (size_t r = 0; r < rows; ++r) {
        double scale = std::fabs(bias[r]);
        for (int i = 0; i < kw; ++i)
            for (int j = 0; j < ka; ++j)
                scale += std::fabs(alpha[r * size_t(kw) + size_t(i)] * beta[size_t(j)]) * double(n);
        if (!(std::fabs(y[r] - expect[r]) <= 1e-5 * scale + 1e-6)) {
            if (!bad)
                detail = "row " + std::to_string(r) + ": kernel " + std::to_string(y[r]) +
                         ", reference " + std::to_string(expect[r]);
            ++bad;
        }
    }
    if (bad) detail = std::to_string(bad) + " rows differ, first " + detail;
    report(bad == 0, what, detail);
}

void check_f32_gemv(size_t rows, size_t n, uint32_t seed) {
    const std::string what = "f32_gemv " + shape(rows, n);
    std::vector<float> M = normal(rows * n, seed), x = normal(n, seed + 1),
                       b = normal(rows, seed + 2), y(rows, NAN);
    // Packed in row panels as amq::FloatMatrix packs it (amq/float_panels.h).
    const size_t panel = AMQ_GENERATED_F32_PANEL;
    std::vector<float> packed(amq::float_panels_size(rows, n, panel) + 16);
    float *P = packed.data();
    while (reinterpret_cast<uintptr_t>(P) % 64) ++P;  // the kernel's 64-byte alignment
    amq::pack_float_panels(M.data(), rows, n, panel, P);
    halide_dimension_t d[3] = {{0, int(panel), 1},
                               {0, int(n), int(panel)},
                               {0, int(amq::float_panels(rows, panel)), int(panel * n)}};
    Buffer<float> Mb(P, 3, d), xb(x.data(), int(n)), bb(b.data(), int(rows)),
        yb(y.data(), int(rows));
    if (!called(amq_f32_gemv(Mb, xb, bb, false, yb), what)) return;
    std::vector<double> scale;
    const std::vector<double> expect = amq::ref::float_gemv(M.data(), rows, n, x.data(), b.data(), &scale);
    size_t bad = 0;
    for (size_t r = 0; r < rows; ++r) bad += !(std::fabs(y[r] - expect[r]) <= 1e-5 * scale[r] + 1e-6);
    report(bad == 0, what, bad ? std::to_string(bad) + " rows differ" : "");
}

}  // namespace

int main() {
    halide_set_error_handler(on_halide_error);
    std::printf("kernels for %s, layout %s, tile %d\n", AMQ_GENERATED_TARGET, AMQ_GENERATED_LAYOUT,
                AMQ_GENERATED_TILE);
    uint32_t seed = 1;
    for (size_t rows : {size_t(7), size_t(129)})
        for (size_t n : {size_t(65), size_t(1000)}) {
            for (int k : {2, 3}) check_pack_bits(k, rows, n, seed++);
            check_bgemv(2, 2, rows, n, seed++);
            check_bgemv(3, 3, rows, n, seed++);
            check_f32_gemv(rows, n, seed++);
        }
    for (size_t n : {size_t(1), size_t(65), size_t(1000)})
        for (int k : {2, 3}) check_quantize_act(k, normal(n, uint32_t(n * 3 + k)), "normal");
    for (int k : {2, 3}) {
        check_quantize_act(k, std::vector<float>(100, 0.0f), "zeros");
        check_quantize_act(k, std::vector<float>(77, -2.5f), "constant");
    }
    std::printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
