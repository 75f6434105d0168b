// The language model's head on the log_softmax kernel: log_softmax, argmax,
// top_k (see amq/rnn.h).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "HalideBuffer.h"
#include "amq/rnn.h"
#include "amq_kernel_table.h"
#include "halide_hooks.h"

namespace amq {
namespace {

using Halide::Runtime::Buffer;

constexpr size_t kBlock = 64;  // logits per block maximum (kLogSoftmaxBlock of the generator)

// Runs the kernel on x[n]: out (or a scratch buffer when null) gets the
// log-probabilities, block_max the maximum of each block of kBlock; returns lse.
float run_log_softmax(const char *fn, const float *x, size_t n, float *out,
                      std::vector<float> &block_max) {
    detail::install_hooks();
    const std::string f = fn;
    if (n == 0) throw Error(f + ": n = 0 (expected at least 1 value)");
    if (n > size_t(INT32_MAX)) throw Error(f + ": n = " + std::to_string(n) + " is too large");
    if (!x) throw Error(f + ": x is null");
    thread_local std::vector<float> scratch;
    if (!out) {
        if (scratch.size() < n) scratch.resize(n);
        out = scratch.data();
    }
    block_max.resize((n + kBlock - 1) / kBlock);
    Buffer<float> xb(const_cast<float *>(x), int(n));
    Buffer<float> yb(out, int(n));
    Buffer<float, 0> lse = Buffer<float, 0>::make_scalar();
    Buffer<float> bm(block_max.data(), int(block_max.size()));
    detail::check(kernels::log_softmax(xb, yb, lse, bm), f.c_str());
    // The kernel's max passes NaN by: look at x itself (a vectorized pass, a
    // tenth of the kernel's time), then name the first bad value.
    // NaN and Inf are the floats whose exponent bits are all set: an integer
    // reduction, which the compiler vectorizes.
    uint32_t inf_or_nan = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, &x[i], 4);
        inf_or_nan |= uint32_t((b & 0x7f800000u) == 0x7f800000u);
    }
    if (!std::isfinite(lse()) || inf_or_nan)
        for (size_t i = 0; i < n; ++i)
            if (!std::isfinite(x[i]))
                throw Error(f + ": x[" + std::to_string(i) + "] is " + std::to_string(x[i]) +
                            ", expected a finite value");
    return lse();
}

}  // namespace

float log_softmax(const float *x, size_t n, float *out) {
    thread_local std::vector<float> block_max;
    return run_log_softmax("log_softmax", x, n, out, block_max);
}

std::vector<size_t> top_k(const float *x, size_t n, size_t k) {
    if (k == 0 || k > n)
        throw Error("top_k: k = " + std::to_string(k) + " (expected 1.." + std::to_string(n) + ")");
    thread_local std::vector<float> block_max;
    run_log_softmax("top_k", x, n, nullptr, block_max);
    // The k blocks of largest maxima (equal maxima: the lower block) hold the top
    // k: a value outside them is at most the k-th largest block maximum, and
    // each of those k blocks has a value at least as large.
    std::vector<size_t> blocks(block_max.size());
    for (size_t b = 0; b < blocks.size(); ++b) blocks[b] = b;
    const size_t kb = std::min(k, blocks.size());
    auto by_max = [&](size_t a, size_t b) {
        return block_max[a] > block_max[b] || (block_max[a] == block_max[b] && a < b);
    };
    std::partial_sort(blocks.begin(), blocks.begin() + ptrdiff_t(kb), blocks.end(), by_max);
    std::vector<size_t> cand;
    for (size_t i = 0; i < kb; ++i)
        for (size_t e = blocks[i] * kBlock; e < std::min(n, (blocks[i] + 1) * kBlock); ++e)
            cand.push_back(e);
    auto by_value = [&](size_t a, size_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
    std::partial_sort(cand.begin(), cand.begin() + ptrdiff_t(k), cand.end(), by_value);
    cand.resize(k);
    return cand;
}

size_t argmax(const float *x, size_t n) {
    if (n == 0) throw Error("argmax: n = 0 (expected at least 1 value)");
    return top_k(x, n, 1)[0];
}

}  // namespace amq
