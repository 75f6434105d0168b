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

void BM_amq(benchmark::State &st, size_t rows, size_t cols, int kw, int ka, int threads) {
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

void BM_bgemv_only(benchmark::State &st, size_t rows, size_t cols, int kw, int ka,
                   int threads) {
    amq::bench::set_threads(threads);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {kw, ka}, false);
    for (auto _ : st) {
        amq::bgemv(p.W, p.a, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    set_counters(st, rows, cols, kw, ka, p.W.bytes());
}

void BM_f32_halide(benchmark::State &st, size_t rows, size_t cols, int threads) {
    amq::bench::set_threads(threads);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {1, 1}, true);
    for (auto _ : st) {
        amq::f32_gemv(p.F, p.x.data(), cols, p.y.data());
        benchmark::DoNotOptimize(p.y.data());
    }
    st.counters["weight_bytes_per_s"] =
        benchmark::Counter(double(rows * cols * 4) * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_sgemv_openblas(benchmark::State &st, size_t rows, size_t cols, int threads) {
    amq::bench::set_threads(threads);
    amq::bench::GemvProblem p = amq::bench::make_gemv_problem(rows, cols, {1, 1}, true);
    for (auto _ : st) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, int(rows), int(cols), 1.0f, p.M.data(), int(cols),
                    p.x.data(), 1, 0.0f, p.y.data(), 1);
        benchmark::DoNotOptimize(p.y.data());
    }
    st.counters["weight_bytes_per_s"] =
        benchmark::Counter(double(rows * cols * 4) * st.iterations(), benchmark::Counter::kIsRate);
}

// Named <function>/<rows>x<cols>/W<w>A<a>/threads:<n>, bits spelled as amq spells them.
void register_all() {
    for (auto sh : amq::spec::bench_shapes)
        for (int t : {1, 2}) {
            const std::string shape = std::to_string(sh.rows) + "x" + std::to_string(sh.cols),
                              threads = "/threads:" + std::to_string(t);
            for (auto bits : amq::spec::bench_bits) {
                const std::string name = shape + "/" + amq::spec::bits_name(bits) + threads;
                benchmark::RegisterBenchmark(("BM_amq/" + name).c_str(), BM_amq, sh.rows, sh.cols,
                                             bits.w, bits.a, t)
                    ->UseRealTime();
                benchmark::RegisterBenchmark(("BM_bgemv_only/" + name).c_str(), BM_bgemv_only,
                                             sh.rows, sh.cols, bits.w, bits.a, t)
                    ->UseRealTime();
            }
            benchmark::RegisterBenchmark(("BM_f32_halide/" + shape + threads).c_str(),
                                         BM_f32_halide, sh.rows, sh.cols, t)
                ->UseRealTime();
            benchmark::RegisterBenchmark(("BM_sgemv_openblas/" + shape + threads).c_str(),
                                         BM_sgemv_openblas, sh.rows, sh.cols, t)
                ->UseRealTime();
        }
}

[[maybe_unused]] const bool registered = (register_all(), true);

}  // namespace

BENCHMARK_MAIN();
