#include "gemv_measure.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "cpu_limits.h"
#include "amq/timing.h"

// OpenBLAS (pthreads build): stops its worker threads; weak, absent elsewhere.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace amq::bench {
namespace {

// At least this many calls per sample: on the largest shapes 2 ms is a handful
// of calls, most of them still refilling the caches the other candidates evicted.
constexpr int kMinCalls = 10;

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
        p.F = FloatMatrix::from_rows(p.M.data(), rows, cols, p.bias.data());
    }
    p.W = BinaryMatrix::from_planes(planes.data(), alpha.data(), bits.w, rows, cols, p.bias.data());
    if (p.W.variant(bits.a))
        p.W_common = BinaryMatrix::from_planes(planes.data(), alpha.data(), bits.w, rows, cols,
                                               p.bias.data(), kernel_layout());
    quantize_act(p.x.data(), cols, bits.a, act_iters, p.a);
    return p;
}

GemvResult measure_gemv(size_t rows, size_t cols, spec::Bits bits, int threads, int rounds,
                        double min_round_ms, int act_iters) {
    set_threads(threads);
    GemvProblem p = make_gemv_problem(rows, cols, bits, true, act_iters);
    const BinaryMatrix &W = p.W;
    BinaryVector &a = p.a;
    std::vector<float> &x = p.x, &y = p.y, &bias = p.bias;
    AlignedVector<float> &M = p.M;
    const FloatMatrix &F = p.F;

    std::vector<std::function<void()>> fns = {
        [&] {
            quantize_act(x.data(), cols, bits.a, act_iters, a);
            bgemv(W, a, y.data());
        },
        [&] { bgemv(W, a, y.data()); },
        [&] { quantize_act(x.data(), cols, bits.a, act_iters, a); },
        [&] { f32_gemv(F, x.data(), cols, y.data()); },
        [&] {
            std::copy(bias.begin(), bias.end(), y.begin());
            cblas_sgemv(CblasRowMajor, CblasNoTrans, int(rows), int(cols), 1.0f, M.data(),
                        int(cols), x.data(), 1, 1.0f, y.data(), 1);
        },
    };
    std::vector<int> fn_threads(fns.size(), threads);
    size_t one_thread_fn = 0, common_fn = 0;
    if (threads > 1) {
        one_thread_fn = fns.size();
        fns.push_back([&] { bgemv(W, a, y.data()); });
        fn_threads.push_back(1);
    }
    // The product's work in an intrinsics loop (cpu_limits.h): its weight bytes
    // streamed once, each 512-bit vector combined with k_a activation words.
    size_t stream_fn = 0;
    const size_t stream_vectors = (product_weight_bytes(rows, cols, bits.w) / 64 + 3) / 4 * 4;
    std::unique_ptr<AlignedWords> stream_block;
    if (cpu_limits_supported()) {
        stream_block = std::make_unique<AlignedWords>(stream_vectors * 8);
        stream_fn = fns.size();
        fns.push_back([&] {
            volatile uint64_t sink = stream_groups(stream_block->data(), stream_vectors, bits.a);
            (void)sink;
        });
        fn_threads.push_back(1);
    }
    if (W.variant(bits.a)) {
        common_fn = fns.size();
        fns.push_back([&] { bgemv(p.W_common, a, y.data()); });
        fn_threads.push_back(threads);
    }
    int current = threads;
    // With threads, no candidate may run beside the idle threads of another:
    // amq's workers spin for 100 us after a kernel (AMQ_SPIN_US), so a pause
    // follows every sample; OpenBLAS's spin for about 2^28 cycles, so its
    // threads are shut down after every sgemv sample (its next untimed call
    // starts them again), where the library exports that.
    const size_t sgemv_fn = 4;
    std::vector<timing::Candidate> cands;
    for (size_t f = 0; f < fns.size(); ++f) {
        timing::Candidate c;
        c.run = fns[f];
        c.before = [&, f] {
            if (fn_threads[f] != current) set_threads(current = fn_threads[f]);
        };
        c.after = [&, f] {
            if (threads == 1) return;
            if (f == sgemv_fn && blas_thread_shutdown_) blas_thread_shutdown_();
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        };
        cands.push_back(std::move(c));
    }
    // The floor's rates in the same rounds (on this thread).
    FloorProbes probes({product_weight_bytes(rows, cols, bits.w)});
    probes.add_to(cands);
    timing::Options o;
    o.round_ms = min_round_ms;
    o.min_calls = kMinCalls;
    o.min_rounds = o.max_rounds = rounds;
    o.stable = 0;
    const std::vector<timing::Result> t = timing::time_interleaved(cands, o);
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
    res.amq_us = t[0].median_us;
    res.amq_gemv_only_us = t[1].median_us;
    res.quantize_act_us = t[2].median_us;
    res.f32_halide_us = t[3].median_us;
    res.sgemv_us = t[4].median_us;
    if (one_thread_fn) res.amq_gemv_only_1thread_us = t[one_thread_fn].median_us;
    if (common_fn) res.common_gemv_only_us = t[common_fn].median_us;
    if (stream_fn) res.stream_groups_us = t[stream_fn].median_us;
    res.amq_spread = t[0].spread;
    res.rounds = rounds;
    res.weight_bytes = W.bytes();
    res.f32_weight_bytes = rows * cols * sizeof(float);
    // The floor of the product on one thread, at the rates of each round: max(ALU,
    // memory); 0 without AVX-512 VPOPCNTDQ.
    const std::vector<double> gpn = probes.groups_per_ns(t), gbps = probes.read_gbps(t, 0);
    std::vector<double> floor;
    for (size_t r = 0; r < gpn.size(); ++r)
        floor.push_back(product_floor(rows, cols, bits.w, bits.a, 1, gpn[r], gbps[r]).bound_us());
    if (!floor.empty() && timing::median(floor) > 0) {
        res.floor_us = timing::median(floor);
        res.amq_vs_floor = timing::median_ratio(t[0].samples, floor);
    }
    return res;
}

}  // namespace amq::bench
