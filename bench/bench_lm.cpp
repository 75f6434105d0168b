// Google Benchmark suite for a language model's head (quantize/include/amq/spec.h:
// bench_vocab, lm_decoder_shape): the log_softmax kernel against the scalar
// reference, top_k, the float decoder product (f32_gemv) with its weight bytes
// per second (compare amq_bench_limits' read bandwidth at the same size), the
// binary decoder products, and ternary activation quantization.
//   amq_bench_lm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Every kernel here runs on one thread: the times are CPU times (as
// amq_bench_limits' bandwidths), which a machine shared with other work
// inflates less than wall time.
#include <benchmark/benchmark.h>

#include "amq/kernels.h"
#include "amq/reference.h"
#include "amq/rnn.h"
#include "amq/spec.h"
#include "gemv_measure.h"

namespace {

std::vector<float> logits(size_t n) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = float((i * 2654435761u) % 1000) / 100.0f - 5.0f;
    return x;
}

void BM_log_softmax(benchmark::State &st) {
    const size_t n = size_t(st.range(0));
    const std::vector<float> x = logits(n);
    std::vector<float> y(n);
    for (auto _ : st) benchmark::DoNotOptimize(amq::log_softmax(x.data(), n, y.data()));
}

void BM_log_softmax_scalar(benchmark::State &st) {
    const size_t n = size_t(st.range(0));
    const std::vector<float> x = logits(n);
    std::vector<float> y(n);
    for (auto _ : st) benchmark::DoNotOptimize(amq::ref::log_softmax(x.data(), n, y.data()));
}

void BM_top_k(benchmark::State &st) {
    const size_t n = size_t(st.range(0)), k = size_t(st.range(1));
    const std::vector<float> x = logits(n);
    for (auto _ : st) benchmark::DoNotOptimize(amq::top_k(x.data(), n, k));
}

void BM_f32_decoder(benchmark::State &st) {
    const amq::spec::Shape s = amq::spec::lm_decoder_shape;
    amq::bench::set_threads(1);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(s.rows, s.cols, {1, 1}, true);
    for (auto _ : st) {
        amq::f32_gemv(p.F, p.x.data(), s.cols, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    st.counters["weight_bytes_per_s"] = benchmark::Counter(
        double(s.rows * s.cols * 4) * double(st.iterations()), benchmark::Counter::kIsRate);
}

// quantize_act of h and the binary decoder product, per bit pair.
void BM_binary_decoder(benchmark::State &st) {
    const amq::spec::Shape s = amq::spec::lm_decoder_shape;
    const int kw = int(st.range(0)), ka = int(st.range(1));
    amq::bench::set_threads(1);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(s.rows, s.cols, {kw, ka}, false);
    for (auto _ : st) {
        amq::quantize_act(p.x.data(), s.cols, ka, 2, p.a);
        amq::bgemv(p.W, p.a, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
}

void BM_quantize_act_ternary(benchmark::State &st) {
    const size_t n = size_t(st.range(0));
    const std::vector<float> x = logits(n);
    amq::BinaryVector a;
    for (auto _ : st) {
        amq::quantize_act_ternary(x.data(), n, a);
        benchmark::DoNotOptimize(a.beta.data());
    }
}

void BM_quantize_act_a2t2(benchmark::State &st) {
    const size_t n = size_t(st.range(0));
    const std::vector<float> x = logits(n);
    amq::BinaryVector a;
    for (auto _ : st) {
        amq::quantize_act(x.data(), n, 2, 2, a);
        benchmark::DoNotOptimize(a.beta.data());
    }
}

// `items` vectors in one quantize_act_batch call (64: a run() chunk's inputs at
// batch 1; 8: the h_t of a batch of 8 sequences), against the calls per vector
// above: the time per item is Time / items (items_per_second).
void quantize_act_a2t2_batch(benchmark::State &st, size_t items) {
    const size_t n = size_t(st.range(0));
    std::vector<float> x;
    for (size_t i = 0; i < items; ++i) {
        const std::vector<float> v = logits(n + i);  // a different vector per item
        x.insert(x.end(), v.begin(), v.begin() + long(n));
    }
    amq::BinaryBatch a;
    a.resize(2, n, items);
    for (auto _ : st) {
        amq::quantize_act_batch(x.data(), n, n, items, 2, 2, a);
        benchmark::DoNotOptimize(a.beta.data());
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * int64_t(items));
}
void BM_quantize_act_a2t2_batch64(benchmark::State &st) { quantize_act_a2t2_batch(st, 64); }
void BM_quantize_act_a2t2_batch8(benchmark::State &st) { quantize_act_a2t2_batch(st, 8); }

void vocab_args(benchmark::internal::Benchmark *b) {
    for (size_t v : amq::spec::bench_vocab) b->Arg(int64_t(v));
}

}  // namespace

BENCHMARK(BM_log_softmax)->Apply(vocab_args);
BENCHMARK(BM_log_softmax_scalar)->Apply(vocab_args);
BENCHMARK(BM_top_k)->Args({6022, 1})->Args({6022, 40});
BENCHMARK(BM_f32_decoder);
BENCHMARK(BM_binary_decoder)->Args({2, 2})->Args({3, 3})->Args({4, 4})->Args({4, 2});
BENCHMARK(BM_quantize_act_ternary)->Arg(300)->Arg(1024);
BENCHMARK(BM_quantize_act_a2t2)->Arg(64)->Arg(128)->Arg(300)->Arg(1024);
BENCHMARK(BM_quantize_act_a2t2_batch64)->Arg(64)->Arg(128)->Arg(300)->Arg(1024);
BENCHMARK(BM_quantize_act_a2t2_batch8)->Arg(64)->Arg(256)->Arg(512)->Arg(1024);

BENCHMARK_MAIN();
