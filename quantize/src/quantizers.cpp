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

// Evenly spaced levels c (2s - K), K = 2^k - 1, as planes with scales c 2^i. c is
// rounded to float first, so the stored scales are exactly c 2^i.
double level_step(const float *w, size_t n, int k, ref::Quantized &q) {
    double m = 0;
    for (size_t e = 0; e < n; ++e) m = std::max(m, std::fabs(double(w[e])));
    const double c = double(float(m / double((1u << k) - 1)));
    for (int i = 0; i < k; ++i) q.alpha[size_t(i)] = std::ldexp(c, i);
    return c;
}

ref::Quantized uniform(const float *w, size_t n, int k) {
    ref::Quantized q = empty_row(n, k);
    const double c = level_step(w, n, k, q);
    const unsigned K = (1u << k) - 1;
    for (size_t e = 0; e < n; ++e) {
        // Nearest level: 2s - K closest to w / c.
        double s = c > 0 ? std::round((double(w[e]) / c + K) / 2) : double(K);
        set_level(q, e, unsigned(std::clamp(s, 0.0, double(K))));
    }
    return q;
}

ref::Quantized balanced(const float *w, size_t n, int k) {
    ref::Quantized q = empty_row(n, k);
    level_step(w, n, k, q);
    const unsigned bins = 1u << k;
    std::vector<float> sorted(w, w + n);
    std::sort(sorted.begin(), sorted.end());
    // Bin s starts at the element of rank floor(s n / 2^k); equal values share a bin.
    std::vector<float> edge(bins - 1);
    for (unsigned s = 1; s < bins; ++s) edge[s - 1] = sorted[size_t(s) * n / bins];
    for (size_t e = 0; e < n; ++e) {
        unsigned s = unsigned(std::upper_bound(edge.begin(), edge.end(), w[e]) - edge.begin());
        set_level(q, e, s);
    }
    return q;
}

ref::Quantized ternary(const float *w, size_t n) {
    ref::Quantized q = empty_row(n, 2);
    double mean_abs = 0;
    for (size_t e = 0; e < n; ++e) mean_abs += std::fabs(double(w[e]));
    const double threshold = 0.7 * mean_abs / double(n);
    double sum = 0;
    size_t count = 0;
    for (size_t e = 0; e < n; ++e)
        if (std::fabs(double(w[e])) > threshold) {
            sum += std::fabs(double(w[e]));
            ++count;
        }
    const double a = count ? double(float(sum / double(count))) : 0.0;
    q.alpha = {a / 2, a / 2};
    for (size_t e = 0; e < n; ++e) {
        const bool big = std::fabs(double(w[e])) > threshold;
        // +a: s = 3 (both +1); -a: s = 0; 0: s = 1 (b_1 = +1, b_2 = -1).
        set_level(q, e, !big ? 1u : (w[e] > 0 ? 3u : 0u));
    }
    return q;
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

ref::Quantized quantize_row(const QuantizeOptions &opt, const float *w, size_t n) {
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
            return uniform(w, n, opt.bits);
        case Method::balanced:
            return balanced(w, n, opt.bits);
        case Method::ternary:
            return ternary(w, n);
    }
    throw std::invalid_argument("amq::quantize_row: unknown method");
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

    auto work = [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) {
            const ref::Quantized row = quantize_row(opt, w + r * cols, cols);
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
