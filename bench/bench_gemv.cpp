// Google Benchmark suite for the GEMV kernels over the spec's shapes and bit
// pairs (quantize/include/amq/spec.h). Run with --benchmark_format=json.
//
// Counters: weight bytes/s streamed, binary ops/s (rows x cols x k_w x k_a
// XOR+popcount bit-products), and float MAC/s for the float baselines.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "amq/kernels.h"
#include "amq/spec.h"
#include "gemv_measure.h"

namespace {

void set_counters(benchmark::State &st, size_t rows, size_t cols, int kw, int ka,
                  size_t weight_bytes) {
    st.counters["weight_bytes_per_s"] =
        benchmark::Counter(double(weight_bytes) * st.iterations(), benchmark::Counter::kIsRate);
    st.counters["bitops_per_s"] = benchmark::Counter(
        double(rows) * cols * kw * ka * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_amq(benchmark::State &st) {
    const size_t rows = st.range(0), cols = st.range(1);
    const int kw = int(st.range(2)), ka = int(st.range(3)), threads = int(st.range(4));
    amq::bench::set_threads(threads);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {kw, ka}, false);
    for (auto _ : st) {
        amq::quantize_act(p.x.data(), cols, ka, 2, p.a);
        amq::bgemv(p.W, p.a, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    set_counters(st, rows, cols, kw, ka, p.W.bytes());
    st.SetLabel(std::string(amq::isa_name(amq::active_isa())) + " " + amq::kernel_layout().layout);
}

void BM_bgemv_only(benchmark::State &st) {
    const size_t rows = st.range(0), cols = st.range(1);
    const int kw = int(st.range(2)), ka = int(st.range(3)), threads = int(st.range(4));
    amq::bench::set_threads(threads);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {kw, ka}, false);
    for (auto _ : st) {
        amq::bgemv(p.W, p.a, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    set_counters(st, rows, cols, kw, ka, p.W.bytes());
}

void BM_f32_halide(benchmark::State &st) {
    const size_t rows = st.range(0), cols = st.range(1);
    amq::bench::set_threads(int(st.range(2)));
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {1, 1}, true);
    for (auto _ : st) {
        amq::f32_gemv(p.M.data(), rows, cols, p.x.data(), p.bias.data(), p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    st.counters["weight_bytes_per_s"] =
        benchmark::Counter(double(rows * cols * 4) * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_sgemv_openblas(benchmark::State &st) {
    const size_t rows = st.range(0), cols = st.range(1);
    amq::bench::set_threads(int(st.range(2)));
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {1, 1}, true);
    for (auto _ : st) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, int(rows), int(cols), 1.0f, p.M.data(), int(cols),
                    p.x.data(), 1, 0.0f, p.y.data(), 1);
        benchmark::DoNotOptimize(p.y.data());
    }
    st.counters["weight_bytes_per_s"] =
        benchmark::Counter(double(rows * cols * 4) * st.iterations(), benchmark::Counter::kIsRate);
}

void binary_args(benchmark::internal::Benchmark *b) {
    b->ArgNames({"rows", "cols", "kw", "ka", "threads"});
    for (auto s : amq::spec::bench_shapes)
        for (auto bits : amq::spec::bench_bits)
            for (int t : {1, 2}) b->Args({long(s.rows), long(s.cols), bits.w, bits.a, t});
}

void float_args(benchmark::internal::Benchmark *b) {
    b->ArgNames({"rows", "cols", "threads"});
    for (auto s : amq::spec::bench_shapes)
        for (int t : {1, 2}) b->Args({long(s.rows), long(s.cols), t});
}

}  // namespace

BENCHMARK(BM_amq)->Apply(binary_args)->UseRealTime();
BENCHMARK(BM_bgemv_only)->Apply(binary_args)->UseRealTime();
BENCHMARK(BM_f32_halide)->Apply(float_args)->UseRealTime();
BENCHMARK(BM_sgemv_openblas)->Apply(float_args)->UseRealTime();

BENCHMARK_MAIN();
