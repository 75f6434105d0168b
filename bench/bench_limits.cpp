// What the CPU this runs on can do for a multi-bit binary GEMV at all: the
// throughput of the XOR + popcount + add group that every bgemv word costs, and
// the streaming read bandwidth at the sizes the weight matrices have. Divide a
// problem's groups (rows x words x k_w x k_a / 8 for 512-bit vectors) by
// groups_per_s, or its weight bytes by the bandwidth at that size, to get the
// floor a kernel cannot beat (docs/PERFORMANCE.md, "The floors of this CPU").
//   amq_bench_limits --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
//                    --benchmark_format=json
// Intrinsics, not Halide: this is the yardstick the kernels are held to.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "cpu_limits.h"

namespace {

using amq::bench::AlignedWords;

// The group on a 16 KB block (L1-resident), so only the vector ALUs limit it.
// lanes: 8 for 512-bit vectors, 4 for 256-bit ones; groups_per_s counts vectors.
void BM_xor_popcnt_add(benchmark::State &st) {
    if (!amq::bench::cpu_limits_supported()) {
        st.SkipWithError("needs AVX-512 VPOPCNTDQ");
        return;
    }
    const int lanes = int(st.range(0));
    const size_t words = 2048, vectors = words / size_t(lanes), passes = 64;
    AlignedWords w(words);
    uint64_t sink = 0;
    for (auto _ : st) {
        sink += amq::bench::xor_popcnt_groups(w.data(), vectors, passes, lanes);
        benchmark::DoNotOptimize(sink);
    }
    st.counters["groups_per_s"] = benchmark::Counter(
        double(vectors * passes) * double(st.iterations()), benchmark::Counter::kIsRate);
    st.SetLabel(std::to_string(lanes * 64) + "-bit vectors");
}
BENCHMARK(BM_xor_popcnt_add)->ArgName("lanes")->Arg(8)->Arg(4);

// Streaming reads of a block of the given size, again and again, as a bgemv
// streams its weights once per call.
void BM_stream_read(benchmark::State &st) {
    if (!__builtin_cpu_supports("avx512f")) {
        st.SkipWithError("needs AVX-512F");
        return;
    }
    const size_t bytes = size_t(st.range(0)) << 10, words = bytes / 8;
    AlignedWords w(words);
    uint64_t sink = 0;
    for (auto _ : st) {
        sink += amq::bench::stream_read(w.data(), words / 8);
        benchmark::DoNotOptimize(sink);
    }
    st.SetBytesProcessed(int64_t(bytes) * st.iterations());
    st.SetLabel(std::to_string(bytes >> 10) + " KiB");
}
// 16 KB .. 64 MB: L1, L2, L3 and memory; 256 KB .. 3 MB are the spec's weights.
BENCHMARK(BM_stream_read)
    ->ArgName("KiB")
    ->Arg(16)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Arg(3072)
    ->Arg(4096)
    ->Arg(7057)  // the demo language model's float decoder, 6022 x 300 floats
    ->Arg(16384)
    ->Arg(65536);

// Both at once: a block streamed as above, each 512-bit vector combined with
// k_a activation words (k_a groups), as a bgemv does with its weights. Neither
// floor alone (ALU or memory) says how well the two overlap; this loop is the
// yardstick for a product whose weights leave L2 (4096 x 1024 W2A2: 1 MB, k_a 2).
void BM_stream_groups(benchmark::State &st) {
    if (!amq::bench::cpu_limits_supported()) {
        st.SkipWithError("needs AVX-512 VPOPCNTDQ");
        return;
    }
    const size_t bytes = size_t(st.range(0)) << 10, words = bytes / 8, vectors = words / 8;
    const int k_a = int(st.range(1));
    AlignedWords w(words);
    uint64_t sink = 0;
    for (auto _ : st) {
        sink += amq::bench::stream_groups(w.data(), vectors, k_a);
        benchmark::DoNotOptimize(sink);
    }
    st.SetBytesProcessed(int64_t(bytes) * st.iterations());
    st.counters["groups_per_s"] = benchmark::Counter(
        double(vectors) * k_a * double(st.iterations()), benchmark::Counter::kIsRate);
    st.SetLabel(std::to_string(bytes >> 10) + " KiB, k_a " + std::to_string(k_a));
}
// The spec's weight sizes (256 KB: 1024 x 1024 W2A2; 1 MB: 4096 x 1024 W2A2;
// 1.5 MB: W3A3) at k_a 1..3.
BENCHMARK(BM_stream_groups)
    ->ArgNames({"KiB", "k_a"})
    ->ArgsProduct({{256, 1024, 1536, 4096}, {1, 2, 3}});

}  // namespace

BENCHMARK_MAIN();
