// Google Benchmark suite for a batch of B sequences: one bgemm call against B
// separate bgemv calls on the same weights, and the fused LSTM / GRU cells; and
// the fused step kernels of one sequence alone.
// Medians over interleaved repetitions:
//   amq_bench_batch --benchmark_repetitions=15 --benchmark_enable_random_interleaving=true
//                   --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "amq/kernels.h"
#include "amq/spec.h"
#include "gemv_measure.h"

namespace {

std::vector<float> normal(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g);
    return v;
}

struct BatchProblem {
    amq::bench::GemvProblem p;
    amq::BinaryBatch batch;
    std::vector<amq::BinaryVector> vectors;
    std::vector<float> y;
};

BatchProblem make_batch_problem(size_t rows, size_t cols, int kw, int ka, size_t B) {
    BatchProblem bp{amq::bench::make_gemv_problem(rows, cols, {kw, ka}, false), {}, {}, {}};
    bp.batch.resize(ka, cols, B);
    bp.vectors.resize(B);
    for (size_t b = 0; b < B; ++b) {
        auto x = normal(cols, uint32_t(100 + b));
        amq::quantize_act(x.data(), cols, ka, 2, bp.vectors[b]);
        bp.batch.set(b, bp.vectors[b]);
    }
    bp.y.resize(B * bp.p.W.rows_padded());
    return bp;
}

void label(benchmark::State &st, const BatchProblem &bp, size_t B) {
    st.counters["items_per_s"] =
        benchmark::Counter(double(B) * st.iterations(), benchmark::Counter::kIsRate);
    st.counters["weight_bytes"] = double(bp.p.W.bytes());
    st.SetLabel(std::string(amq::isa_name(amq::active_isa())));
}

// One bgemm call for the whole batch.
void BM_bgemm(benchmark::State &st, size_t rows, size_t cols, amq::spec::Bits bits, size_t B,
             int threads) {
    amq::bench::set_threads(threads);
    BatchProblem bp = make_batch_problem(rows, cols, bits.w, bits.a, B);
    for (auto _ : st) {
        amq::bgemm(bp.p.W, bp.batch, bp.y.data());
        benchmark::DoNotOptimize(bp.y.data());
    }
    label(st, bp, B);
}

// B bgemv calls, one per item (what a runner without bgemm would do).
void BM_bgemv_each(benchmark::State &st, size_t rows, size_t cols, amq::spec::Bits bits,
                   size_t B, int threads) {
    amq::bench::set_threads(threads);
    BatchProblem bp = make_batch_problem(rows, cols, bits.w, bits.a, B);
    for (auto _ : st) {
        for (size_t b = 0; b < B; ++b) amq::bgemv(bp.p.W, bp.vectors[b], bp.y.data() + b * rows);
        benchmark::DoNotOptimize(bp.y.data());
    }
    label(st, bp, B);
}

// Named <function>/<rows>x<cols>/W<w>A<a>/B:<items>/threads:1, bits spelled as
// amq spells them.
void register_batch() {
    struct Case {
        size_t rows, cols;
        amq::spec::Bits bits;
    };
    for (size_t B : {1, 4, 8})
        for (Case c : {Case{4096, 1024, {2, 2}}, Case{4096, 1024, {3, 3}}, Case{4096, 2048, {2, 2}}}) {
            const std::string name = "/" + std::to_string(c.rows) + "x" + std::to_string(c.cols) +
                                     "/" + amq::spec::bits_name(c.bits) +
                                     "/B:" + std::to_string(B) + "/threads:1";
            benchmark::RegisterBenchmark(("BM_bgemm" + name).c_str(), BM_bgemm, c.rows, c.cols,
                                         c.bits, B, 1)
                ->UseRealTime();
            benchmark::RegisterBenchmark(("BM_bgemv_each" + name).c_str(), BM_bgemv_each, c.rows,
                                         c.cols, c.bits, B, 1)
                ->UseRealTime();
        }
}
[[maybe_unused]] const bool registered = (register_batch(), true);

// The fused cells on gate pre-activations of H units for B items.
void BM_lstm_cell(benchmark::State &st) {
    const size_t H = st.range(0), B = st.range(1);
    auto gx = normal(B * 4 * H, 1, 2.0f), gh = normal(B * 4 * H, 2);
    auto c = normal(B * H, 3);
    std::vector<float> h(B * H);
    for (auto _ : st) {
        amq::lstm_cell({gx.data(), B, 4 * H}, {gh.data(), B, 4 * H}, {c.data(), B, H},
                       {h.data(), B, H}, {c.data(), B, H});
        benchmark::DoNotOptimize(h.data());
    }
}

void BM_gru_cell(benchmark::State &st) {
    const size_t H = st.range(0), B = st.range(1);
    auto gx = normal(B * 3 * H, 1, 2.0f), gh = normal(B * 3 * H, 2);
    auto h = normal(B * H, 3);
    for (auto _ : st) {
        amq::gru_cell({gx.data(), B, 3 * H}, {gh.data(), B, 3 * H}, {h.data(), B, H},
                      {h.data(), B, H});
        benchmark::DoNotOptimize(h.data());
    }
}

void cell_args(benchmark::internal::Benchmark *b) {
    b->ArgNames({"H", "B"});
    for (long H : {256, 1024})
        for (long B : {1, 4}) b->Args({H, B});
}

// One fused recurrent step kernel (lstm_step / gru_step: the product on the
// planes of h_{t-1}, the cell, the planes of h_t) of one sequence, W2A2,
// alternating T = 2, on the gate inputs gx of a random step; each call takes
// the planes the previous one wrote, as run() does. The kernel alone, without
// run()'s input product and calls: amq bench rnn times those. `bound`: through
// an amq::FusedStep bound once (as run() and step() call it); else through the
// functions amq::lstm_step / amq::gru_step, which check and set up every buffer
// of the kernel call on every call (BM_step/unbound_lstm, BM_step/unbound_gru).
void BM_step(benchmark::State &st, bool lstm, bool bound) {
    const size_t H = st.range(0), G = lstm ? 4 : 3;
    if (!amq::fused_step_built(2, 2, 2)) {
        st.SkipWithError("no fused W2A2 step kernel in this build");
        return;
    }
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(G * H, H, {2, 2}, false);
    const amq::BinaryMatrix &W = p.W_common.rows() ? p.W_common : p.W;
    auto gx = normal(G * H, 1, 2.0f), h = normal(H, 2), c = normal(H, 3);
    amq::BinaryBatch hq, next;
    hq.resize(2, H, 1);
    amq::quantize_act(h.data(), H, 2, 2, hq, 0);
    const amq::FusedStep step = lstm ? amq::FusedStep::lstm(W, 2, 1, G * H, c.data(), h.data(), 2)
                                     : amq::FusedStep::gru(W, 2, 1, G * H, h.data(), 2);
    for (auto _ : st) {
        if (bound)
            step.run(hq, gx.data(), next);
        else if (lstm)
            amq::lstm_step(W, hq, gx.data(), G * H, c.data(), h.data(), next, 2);
        else
            amq::gru_step(W, hq, gx.data(), G * H, h.data(), next, 2);
        std::swap(hq, next);
        benchmark::DoNotOptimize(h.data());
    }
}

void step_args(benchmark::internal::Benchmark *b) {
    b->ArgName("H");
    for (long H : {64, 128, 256, 512, 1024}) b->Arg(H);
}

}  // namespace

BENCHMARK(BM_lstm_cell)->Apply(cell_args)->UseRealTime();
BENCHMARK(BM_gru_cell)->Apply(cell_args)->UseRealTime();
BENCHMARK_CAPTURE(BM_step, lstm, true, true)->Apply(step_args)->UseRealTime();
BENCHMARK_CAPTURE(BM_step, gru, false, true)->Apply(step_args)->UseRealTime();
// (--benchmark_filter='BM_step/(lstm|gru)/' selects the bound ones.)
BENCHMARK_CAPTURE(BM_step, unbound_lstm, true, false)->Apply(step_args)->UseRealTime();
BENCHMARK_CAPTURE(BM_step, unbound_gru, false, false)->Apply(step_args)->UseRealTime();

BENCHMARK_MAIN();
