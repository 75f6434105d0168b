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
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

bool has_avx512_popcnt() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
           __builtin_cpu_supports("avx512vl");
}

struct FreeDeleter {
    void operator()(void *p) const { std::free(p); }
};
using Words = std::unique_ptr<uint64_t[], FreeDeleter>;

Words aligned_words(size_t n) {
    auto *p = static_cast<uint64_t *>(std::aligned_alloc(64, ((n * 8 + 63) / 64) * 64));
    for (size_t i = 0; i < n; ++i) p[i] = 0x9E3779B97F4A7C15ull * (i + 1);
    return Words(p);
}

constexpr int kAcc = 8;  // independent accumulators: covers popcount latency x ports

#define AMQ_LIMITS_TARGET __attribute__((target("avx512f,avx512vl,avx512vpopcntdq"), always_inline))

// The vector operations of one group, per vector width.
struct Zmm {
    using V = __m512i;
    static constexpr size_t kWords = 8;
    AMQ_LIMITS_TARGET static V zero() { return _mm512_setzero_si512(); }
    AMQ_LIMITS_TARGET static V broadcast(uint64_t a) { return _mm512_set1_epi64(int64_t(a)); }
    AMQ_LIMITS_TARGET static V load(const uint64_t *w) { return _mm512_load_si512(w); }
    AMQ_LIMITS_TARGET static V group(V acc, V x, V a) {
        return _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, a)));
    }
    AMQ_LIMITS_TARGET static V add(V x, V y) { return _mm512_add_epi64(x, y); }
    AMQ_LIMITS_TARGET static uint64_t sum(V x) { return uint64_t(_mm512_reduce_add_epi64(x)); }
};

struct Ymm {
    using V = __m256i;
    static constexpr size_t kWords = 4;
    AMQ_LIMITS_TARGET static V zero() { return _mm256_setzero_si256(); }
    AMQ_LIMITS_TARGET static V broadcast(uint64_t a) { return _mm256_set1_epi64x(int64_t(a)); }
    AMQ_LIMITS_TARGET static V load(const uint64_t *w) {
        return _mm256_load_si256(reinterpret_cast<const __m256i *>(w));
    }
    AMQ_LIMITS_TARGET static V group(V acc, V x, V a) {
        return _mm256_add_epi64(acc, _mm256_popcnt_epi64(_mm256_xor_si256(x, a)));
    }
    AMQ_LIMITS_TARGET static V add(V x, V y) { return _mm256_add_epi64(x, y); }
    AMQ_LIMITS_TARGET static uint64_t sum(V x) {
        return uint64_t(_mm256_extract_epi64(x, 0) + _mm256_extract_epi64(x, 1) +
                        _mm256_extract_epi64(x, 2) + _mm256_extract_epi64(x, 3));
    }
};

// kAcc groups per pass over the loads: acc[j] += popcnt(w[j] ^ a).
template <typename Vec>
__attribute__((target("avx512f,avx512vl,avx512vpopcntdq"))) uint64_t groups(const uint64_t *w,
                                                                            size_t vectors,
                                                                            size_t passes) {
    typename Vec::V acc[kAcc];
    for (auto &x : acc) x = Vec::zero();
    const auto a = Vec::broadcast(0x5555AAAA3333CCCCull);
    for (size_t p = 0; p < passes; ++p)
        for (size_t v = 0; v < vectors; v += kAcc)
            for (int j = 0; j < kAcc; ++j)
                acc[j] = Vec::group(acc[j], Vec::load(w + (v + j) * Vec::kWords), a);
    auto s = acc[0];
    for (int j = 1; j < kAcc; ++j) s = Vec::add(s, acc[j]);
    return Vec::sum(s);
}

// The group on a 16 KB block (L1-resident), so only the vector ALUs limit it.
// lanes: 8 for 512-bit vectors, 4 for 256-bit ones; groups_per_s counts vectors.
void BM_xor_popcnt_add(benchmark::State &st) {
    if (!has_avx512_popcnt()) {
        st.SkipWithError("needs AVX-512 VPOPCNTDQ");
        return;
    }
    const int lanes = int(st.range(0));
    const size_t words = 2048, vectors = words / size_t(lanes), passes = 64;
    Words w = aligned_words(words);
    uint64_t sink = 0;
    for (auto _ : st) {
        sink += lanes == 8 ? groups<Zmm>(w.get(), vectors, passes)
                           : groups<Ymm>(w.get(), vectors, passes);
        benchmark::DoNotOptimize(sink);
    }
    st.counters["groups_per_s"] = benchmark::Counter(
        double(vectors * passes) * double(st.iterations()), benchmark::Counter::kIsRate);
    st.SetLabel(std::to_string(lanes * 64) + "-bit vectors");
}
BENCHMARK(BM_xor_popcnt_add)->ArgName("lanes")->Arg(8)->Arg(4);

// Streaming reads of a block of the given size, again and again, as a bgemv
// streams its weights once per call. Eight 512-bit xor chains hide load latency.
__attribute__((target("avx512f"))) uint64_t read_zmm(const uint64_t *w, size_t vectors) {
    __m512i acc[kAcc];
    for (auto &x : acc) x = _mm512_setzero_si512();
    for (size_t v = 0; v < vectors; v += kAcc)
        for (int j = 0; j < kAcc; ++j)
            acc[j] = _mm512_xor_si512(acc[j], _mm512_load_si512(w + (v + j) * 8));
    __m512i s = acc[0];
    for (int j = 1; j < kAcc; ++j) s = _mm512_xor_si512(s, acc[j]);
    return uint64_t(_mm512_reduce_add_epi64(s));
}

void BM_stream_read(benchmark::State &st) {
    if (!__builtin_cpu_supports("avx512f")) {
        st.SkipWithError("needs AVX-512F");
        return;
    }
    const size_t bytes = size_t(st.range(0)) << 10, words = bytes / 8;
    Words w = aligned_words(words);
    uint64_t sink = 0;
    for (auto _ : st) {
        sink += read_zmm(w.get(), words / 8);
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

}  // namespace

BENCHMARK_MAIN();
