#include "gemv_measure.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "cpu_limits.h"

// OpenBLAS (pthreads build): stops its worker threads; weak, absent elsewhere.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace amq::bench {
namespace {

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

// Calls fn `calls` times and returns the mean time per call.
double time_calls(const std::function<void()> &fn, int calls) {
    double t0 = now_us();
    for (int c = 0; c < calls; ++c) fn();
    return (now_us() - t0) / calls;
}

constexpr int kMinCalls = 10;  // per candidate and round

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[size_t(q * (v.size() - 1) + 0.5)];
}

}  // namespace

void set_threads(int threads) {
    amq::set_num_threads(threads);
    openblas_set_num_threads(threads);
}

GemvProblem make_gemv_problem(size_t rows, size_t cols, spec::Bits bits, bool with_float,
                              int act_iters) {
    std::mt19937_64 g(42);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const size_t words = ref::words_for(cols);
    std::vector<uint64_t> planes(size_t(bits.w) * rows * words);
    for (auto &w : planes) w = g();
    for (size_t p = 0; p < size_t(bits.w) * rows; ++p)
        planes[p * words + words - 1] &= ref::last_word_mask(cols);
    std::vector<float> alpha(rows * bits.w);
    for (auto &v : alpha) v = std::abs(nd(g)) * 0.1f;
    GemvProblem p;
    p.bias.resize(rows);
    for (auto &v : p.bias) v = nd(g);
    p.x.resize(cols);
    for (auto &v : p.x) v = nd(g);
    p.y.resize(rows);
    if (with_float) {
        p.M.resize(rows * cols);
        for (auto &v : p.M) v = nd(g);
    }
    p.W = BinaryMatrix::from_planes(planes.data(), alpha.data(), bits.w, rows, cols, p.bias.data());
    quantize_act(p.x.data(), cols, bits.a, act_iters, p.a);
    return p;
}

GemvResult measure_gemv(size_t rows, size_t cols, spec::Bits bits, int threads, int rounds,
                        double min_round_ms, int act_iters) {
    set_threads(threads);
    GemvProblem p = make_gemv_problem(rows, cols, bits, true, act_iters);
    const BinaryMatrix &W = p.W;
    BinaryVector &a = p.a;
    std::vector<float> &x = p.x, &y = p.y, &M = p.M, &bias = p.bias;

    std::vector<std::function<void()>> fns = {
        [&] {
            quantize_act(x.data(), cols, bits.a, act_iters, a);
            bgemv(W, a, y.data());
        },
        [&] { bgemv(W, a, y.data()); },
        [&] { quantize_act(x.data(), cols, bits.a, act_iters, a); },
        [&] { f32_gemv(M.data(), rows, cols, x.data(), bias.data(), y.data()); },
        [&] {
            std::copy(bias.begin(), bias.end(), y.begin());
            cblas_sgemv(CblasRowMajor, CblasNoTrans, int(rows), int(cols), 1.0f, M.data(),
                        int(cols), x.data(), 1, 1.0f, y.data(), 1);
        },
    };
    std::vector<int> fn_threads(fns.size(), threads);
    if (threads > 1) {
        fns.push_back([&] { bgemv(W, a, y.data()); });
        fn_threads.push_back(1);
    }
    int current = threads;
    auto use_threads = [&](size_t f) {
        if (fn_threads[f] != current) set_threads(current = fn_threads[f]);
    };
    // Calibrate calls per round so that each candidate runs about min_round_ms.
    std::vector<int> calls(fns.size());
    for (size_t f = 0; f < fns.size(); ++f) {
        use_threads(f);
        fns[f]();  // warm-up
        double t = std::max(time_calls(fns[f], 3), 0.05);
        // At least 10 calls: on the largest shapes 2 ms is a handful of calls,
        // most of them still refilling the caches the other candidates evicted.
        calls[f] = std::max(kMinCalls, int(min_round_ms * 1000.0 / t));
    }
    // With threads, no candidate may run beside the idle threads of another:
    // amq's workers spin for 100 us after a kernel (AMQ_SPIN_US), so a pause
    // precedes every candidate; OpenBLAS's spin for about 2^28 cycles, so its
    // threads are shut down after every sgemv block (its next untimed call starts
    // them again), where the library exports that.
    const size_t sgemv_fn = 4;
    auto settle = [&](size_t f) {
        if (threads == 1) return;
        if (f == sgemv_fn && blas_thread_shutdown_) blas_thread_shutdown_();
        std::this_thread::sleep_for(std::chrono::microseconds(300));
    };
    std::vector<std::vector<double>> times(fns.size());
    // Each candidate gets one untimed call first in every round, so that none is
    // timed right after another one's working set evicted its own from the caches;
    // and every round runs them in a new random order (fixed seed), so that no
    // candidate always follows the same one: on the largest shapes the one after
    // the amq product finds its weights still in L3. (Turning the order by one
    // each round is not enough: it keeps every candidate's successor.)
    std::vector<size_t> order(fns.size());
    for (size_t f = 0; f < fns.size(); ++f) order[f] = f;
    std::mt19937 shuffle_rng(20261205u);
    for (int r = 0; r < rounds; ++r) {
        std::shuffle(order.begin(), order.end(), shuffle_rng);
        for (const size_t f : order) {
            use_threads(f);
            fns[f]();
            times[f].push_back(time_calls(fns[f], calls[f]));
            settle(f);
        }
    }
    set_threads(threads);

    GemvResult res;
    res.rows = rows;
    res.cols = cols;
    res.k_w = bits.w;
    res.k_a = bits.a;
    res.threads = threads;
    res.iters = act_iters;
    res.isa = isa_name(active_isa());
    res.layout = kernel_layout().layout + "/" + std::to_string(kernel_layout().tile);
    res.amq_us = median(times[0]);
    res.amq_gemv_only_us = median(times[1]);
    res.quantize_act_us = median(times[2]);
    res.f32_halide_us = median(times[3]);
    res.sgemv_us = median(times[4]);
    if (threads > 1) res.amq_gemv_only_1thread_us = median(times[5]);
    res.amq_spread = (quantile(times[0], 0.9) - quantile(times[0], 0.1)) / res.amq_us;
    res.rounds = rounds;
    res.weight_bytes = W.bytes();
    res.f32_weight_bytes = rows * cols * sizeof(float);
    // The floor of the product on one thread, at the rates measured now
    // (cpu_limits.h): max(ALU, memory); 0 without AVX-512 VPOPCNTDQ.
    const double gpn = measure_cpu_limits().groups_per_ns;
    if (gpn > 0)
        res.floor_us = product_floor(rows, cols, bits.w, bits.a, 1, gpn,
                                     measure_read_gbps(product_weight_bytes(rows, cols, bits.w)))
                           .bound_us();
    return res;
}

}  // namespace amq::bench
