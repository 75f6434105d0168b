// Offline weight quantizers (see amq/quantizers.h): per-row methods and the
// parallel driver over the rows of a matrix.
#include "amq/quantizers.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <thread>

namespace amq {
namespace {

[[noreturn]] void fail(const std::string &what) {
    throw std::invalid_argument("amq::quantize_matrix: " + what);
}

ref::Quantized empty_row(size_t n, int k) {
    return ref::Quantized{k, n, std::vector<double>(size_t(k)), std::vector<int8_t>(size_t(k) * n)};
}

// Row e takes level s in [0, 2^k): codes are the bits of s (bit i set <=> b_i = +1).
void set_level(ref::Quantized &q, size_t e, unsigned s) {
    for (int i = 0; i < q.k; ++i) q.codes[size_t(i) * q.n + e] = (s >> i & 1) ? 1 : -1;
}

// Evenly spaced levels c (2s - K), K = 2^k - 1, stored as planes with scales
// c 2^i (c rounded to float first, so the stored scales are exactly c 2^i).
// Uniform: c = max|w| / K. Balanced: bin edges at percentiles, then the
// least-squares c for the bins. Each computed over one row, or given for all the
// rows of a matrix (tensor range).
struct Levels {
    double c = 0;
    std::vector<float> edges;  // balanced: 2^k - 1 bin starts
};

void set_scales(ref::Quantized &q, double c) {
    for (int i = 0; i < q.k; ++i) q.alpha[size_t(i)] = std::ldexp(double(float(c)), i);
}

double uniform_step(const float *w, size_t n, int k) {
    double m = 0;
    for (size_t e = 0; e < n; ++e) m = std::max(m, std::fabs(double(w[e])));
    return double(float(m / double((1u << k) - 1)));
}

// Bin s of 2^k starts at the element of rank floor(s n / 2^k); equal values share a bin.
std::vector<float> balanced_edges(const float *w, size_t n, int k) {
    const unsigned bins = 1u << k;
    std::vector<float> sorted(w, w + n), edges(bins - 1);
    std::sort(sorted.begin(), sorted.end());
    for (unsigned s = 1; s < bins; ++s) edges[s - 1] = sorted[size_t(s) * n / bins];
    return edges;
}

unsigned bin_of(const std::vector<float> &edges, float v) {
    return unsigned(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
}

// Least squares c for w ~ c (2 s - K) with the bins of `edges`: sums to add up.
void balanced_sums(const float *w, size_t n, int k, const std::vector<float> &edges, double &wl,
                   double &ll) {
    const double K = double((1u << k) - 1);
    for (size_t e = 0; e < n; ++e) {
        const double L = 2.0 * bin_of(edges, w[e]) - K;
        wl += L * double(w[e]);
        ll += L * L;
    }
}

ref::Quantized uniform(const float *w, size_t n, int k, const Levels *given) {
    ref::Quantized q = empty_row(n, k);
    const double c = given ? given->c : uniform_step(w, n, k);
    set_scales(q, c);
    const unsigned K = (1u << k) - 1;
    for (size_t e = 0; e < n; ++e) {
        // Nearest level: 2s - K closest to w / c.
        double s = c > 0 ? std::round((double(w[e]) / c + K) / 2) : double(K);
        set_level(q, e, unsigned(std::clamp(s, 0.0, double(K))));
    }
    return q;
}

ref::Quantized balanced(const float *w, size_t n, int k, const Levels *given) {
    ref::Quantized q = empty_row(n, k);
    Levels own;
    if (!given) {
        own.edges = balanced_edges(w, n, k);
        double wl = 0, ll = 0;
        balanced_sums(w, n, k, own.edges, wl, ll);
        own.c = ll > 0 ? wl / ll : 0.0;
    }
    const Levels &lv = given ? *given : own;
    set_scales(q, lv.c);
    for (size_t e = 0; e < n; ++e) set_level(q, e, bin_of(lv.edges, w[e]));
    return q;
}

// The levels of a whole matrix, for the tensor range.
Levels tensor_levels(Method m, const float *w, size_t rows, size_t cols, int k) {
    Levels lv;
    const size_t n = rows * cols;
    if (m == Method::uniform) {
        lv.c = uniform_step(w, n, k);
    } else {
        lv.edges = balanced_edges(w, n, k);
        double wl = 0, ll = 0;
        balanced_sums(w, n, k, lv.edges, wl, ll);
        lv.c = ll > 0 ? wl / ll : 0.0;
    }
    return lv;
}

}  // namespace

const std::vector<Method> &all_methods() {
    static const std::vector<Method> all = {Method::uniform, Method::balanced,    Method::greedy,
                                            Method::refined, Method::alternating, Method::ternary};
    return all;
}

const char *method_name(Method m) {
    switch (m) {
        case Method::alternating:
            return "alternating";
        case Method::greedy:
            return "greedy";
        case Method::refined:
            return "refined";
        case Method::uniform:
            return "uniform";
        case Method::balanced:
            return "balanced";
        case Method::ternary:
            return "ternary";
    }
    return "?";
}

Method parse_method(const std::string &name) {
    std::string valid;
    for (Method m : all_methods()) {
        if (name == method_name(m)) return m;
        valid += valid.empty() ? "" : "|";
        valid += method_name(m);
    }
    throw std::invalid_argument("unknown quantization method '" + name + "', expected one of " +
                                valid);
}

bool method_supports_bits(Method m, int bits) {
    if (m == Method::ternary) return bits == 2;
    return bits >= 1 && bits <= ref::kMaxBits;
}

const char *init_name(Init i) { return i == Init::refined ? "refined" : "greedy"; }

Init parse_init(const std::string &name) {
    if (name == "refined") return Init::refined;
    if (name == "greedy") return Init::greedy;
    throw std::invalid_argument("unknown alternating init '" + name + "', expected refined|greedy");
}

const char *range_name(Range r) { return r == Range::row ? "row" : "tensor"; }

Range parse_range(const std::string &name) {
    if (name == "row") return Range::row;
    if (name == "tensor") return Range::tensor;
    throw std::invalid_argument("unknown level range '" + name + "', expected row|tensor");
}

namespace {
ref::Quantized quantize_row(const QuantizeOptions &opt, const float *w, size_t n,
                            const Levels *given) {
    switch (opt.method) {
        case Method::alternating: {
            if (opt.init == Init::greedy) return ref::alternating(w, n, opt.bits, opt.iters);
            ref::Quantized q = ref::refined(w, n, opt.bits);
            for (int t = 0; t < opt.iters; ++t) {
                ref::assign_codes(w, n, q.alpha.data(), q.k, q.codes.data());
                ref::refit_scales(w, n, q.codes.data(), q.k, q.alpha.data());
            }
            return q;
        }
        case Method::greedy:
            return ref::greedy(w, n, opt.bits);
        case Method::refined:
            return ref::refined(w, n, opt.bits);
        case Method::uniform:
            return uniform(w, n, opt.bits, given);
        case Method::balanced:
            return balanced(w, n, opt.bits, given);
        case Method::ternary:
            return ref::ternary(w, n);
    }
    throw std::invalid_argument("amq::quantize_row: unknown method");
}
}  // namespace

ref::Quantized quantize_row(const QuantizeOptions &opt, const float *w, size_t n) {
    return quantize_row(opt, w, n, nullptr);
}

QuantTensor quantize_matrix(const float *w, size_t rows, size_t cols, const QuantizeOptions &opt) {
    if (!method_supports_bits(opt.method, opt.bits))
        fail(std::string("bits = ") + std::to_string(opt.bits) + " is not supported by method " +
             method_name(opt.method) +
             (opt.method == Method::ternary ? ", expected 2" : ", expected 1..4"));
    if (opt.iters < 0) fail("iters = " + std::to_string(opt.iters) + ", expected >= 0");
    if (rows == 0 || cols == 0)
        fail("shape " + std::to_string(rows) + "x" + std::to_string(cols) +
             ", expected at least one row and one column");
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c)
            if (!std::isfinite(w[r * cols + c]))
                fail("element (" + std::to_string(r) + ", " + std::to_string(c) + ") is " +
                     std::to_string(w[r * cols + c]) + ", expected a finite value");

    QuantTensor q;
    q.k = opt.bits;
    q.rows = rows;
    q.cols = cols;
    const size_t words = q.words(), k = size_t(opt.bits);
    q.planes.assign(k * rows * words, 0);
    q.alpha.assign(rows * k, 0.0f);

    const bool tensor_range = opt.range == Range::tensor &&
                              (opt.method == Method::uniform || opt.method == Method::balanced);
    const Levels levels =
        tensor_range ? tensor_levels(opt.method, w, rows, cols, opt.bits) : Levels{};
    auto work = [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) {
            const ref::Quantized row =
                quantize_row(opt, w + r * cols, cols, tensor_range ? &levels : nullptr);
            for (size_t i = 0; i < k; ++i) {
                q.alpha[r * k + i] = float(row.alpha[i]);
                uint64_t *dst = &q.planes[(i * rows + r) * words];
                for (size_t c = 0; c < cols; ++c)
                    if (row.codes[i * cols + c] > 0) dst[c / 64] |= uint64_t(1) << (c % 64);
            }
        }
    };
    size_t threads =
        opt.threads > 0 ? size_t(opt.threads) : std::max(1u, std::thread::hardware_concurrency());
    threads = std::min(threads, rows);
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(threads);
    for (size_t t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            try {
                work(rows * t / threads, rows * (t + 1) / threads);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    for (auto &th : pool) th.join();
    for (auto &e : errors)
        if (e) std::rethrow_exception(e);
    return q;
}

ErrorSums quantization_error(const float *w, const QuantTensor &q) {
    ErrorSums s;
    const size_t words = q.words(), k = size_t(q.k);
    for (size_t r = 0; r < q.rows; ++r)
        for (size_t c = 0; c < q.cols; ++c) {
            double v = 0;
            for (size_t i = 0; i < k; ++i) {
                const uint64_t word = q.planes[(i * q.rows + r) * words + c / 64];
                v += double(q.alpha[r * k + i]) * ((word >> (c % 64) & 1) ? 1.0 : -1.0);
            }
            const double x = w[r * q.cols + c];
            s.err += (x - v) * (x - v);
            s.norm += x * x;
        }
    return s;
}

}  // namespace amq
