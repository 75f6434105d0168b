#include "cpu_limits.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace amq::bench {
namespace {

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

// Eight 512-bit xor chains hide the load latency.
__attribute__((target("avx512f"))) uint64_t read_zmm(const uint64_t *w, size_t vectors) {
    __m512i acc[kAcc];
    for (auto &x : acc) x = _mm512_setzero_si512();
    for (size_t v = 0; v < vectors; v += kAcc)
        for (int j = 0; j < kAcc; ++j)
            acc[j] = _mm512_xor_si512(acc[j], _mm512_load_si512(w + (v + j) * 8));
    __m512i s = acc[0];
    for (int j = 1; j < kAcc; ++j) s = _mm512_xor_si512(s, acc[j]);
    // Fold the lanes as unsigned words: the data is random bits, so a signed
    // reduction (_mm512_reduce_add_epi64) would overflow (undefined behaviour).
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, s);
    uint64_t r = 0;
    for (uint64_t x : lanes) r ^= x;
    return r;
}

// Each 512-bit vector read once and combined with k_a broadcast activation
// words (KA groups), four vectors in flight: a bgemv's work per weight vector.
template <int KA>
__attribute__((target("avx512f,avx512vl,avx512vpopcntdq"))) uint64_t stream_groups_of(
    const uint64_t *w, size_t vectors) {
    constexpr int kIn = 4;
    __m512i acc[kIn][KA], a[KA];
    for (int j = 0; j < KA; ++j) a[j] = Zmm::broadcast(0x5555AAAA3333CCCCull * uint64_t(j + 1));
    for (auto &row : acc)
        for (auto &x : row) x = Zmm::zero();
    for (size_t v = 0; v < vectors; v += kIn)
        for (int u = 0; u < kIn; ++u) {
            const __m512i x = Zmm::load(w + (v + u) * 8);
            for (int j = 0; j < KA; ++j) acc[u][j] = Zmm::group(acc[u][j], x, a[j]);
        }
    __m512i s = Zmm::zero();
    for (auto &row : acc)
        for (auto &x : row) s = Zmm::add(s, x);
    return Zmm::sum(s);
}

}  // namespace

bool cpu_limits_supported() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
           __builtin_cpu_supports("avx512vl");
}

uint64_t xor_popcnt_groups(const uint64_t *w, size_t vectors, size_t passes, int lanes) {
    return lanes == 8 ? groups<Zmm>(w, vectors, passes) : groups<Ymm>(w, vectors, passes);
}

uint64_t stream_read(const uint64_t *w, size_t vectors) { return read_zmm(w, vectors); }

uint64_t stream_groups(const uint64_t *w, size_t vectors, int k_a) {
    switch (k_a) {
        case 1: return stream_groups_of<1>(w, vectors);
        case 2: return stream_groups_of<2>(w, vectors);
        case 3: return stream_groups_of<3>(w, vectors);
        default: return stream_groups_of<4>(w, vectors);
    }
}

AlignedWords::AlignedWords(size_t words)
    : p_(static_cast<uint64_t *>(std::aligned_alloc(64, ((words * 8 + 63) / 64) * 64))) {
    for (size_t i = 0; i < words; ++i) p_[i] = 0x9E3779B97F4A7C15ull * (i + 1);
}

AlignedWords::~AlignedWords() { std::free(p_); }

// The ALU loop's block: 16 KB (L1), 64 passes a call.
constexpr size_t kAluWords = 2048, kAluVectors = kAluWords / 8, kAluPasses = 64;

// The 512-bit vectors read for a block of `bytes`: whole blocks of kAcc vectors.
size_t read_vectors(size_t bytes) {
    return std::max<size_t>(kAcc, (bytes + 64 * kAcc - 1) / (64 * kAcc) * kAcc);
}

FloorProbes::FloorProbes(const std::vector<size_t> &read_bytes) {
    for (size_t bytes : read_bytes) vectors_.push_back(read_vectors(bytes));
}

FloorProbes::~FloorProbes() = default;

void FloorProbes::add_to(std::vector<timing::Candidate> &cands) {
    if (!cpu_limits_supported()) return;
    first_ = long(cands.size());
    alu_ = std::make_unique<AlignedWords>(kAluWords);
    timing::Candidate alu;
    alu.run = [w = alu_->data()] {
        volatile uint64_t sink = xor_popcnt_groups(w, kAluVectors, kAluPasses, 8);
        (void)sink;
    };
    alu.units_per_call = double(kAluVectors * kAluPasses);  // a sample: us per group
    cands.push_back(std::move(alu));
    for (size_t v : vectors_) {
        blocks_.push_back(std::make_unique<AlignedWords>(v * 8));
        timing::Candidate read;
        read.run = [w = blocks_.back()->data(), v] {
            volatile uint64_t sink = stream_read(w, v);
            (void)sink;
        };
        read.units_per_call = double(v * 64);  // a sample: us per byte
        cands.push_back(std::move(read));
    }
}

// Units per ns from samples of us per unit.
std::vector<double> FloorProbes::rates(const timing::Result &r) const {
    std::vector<double> out;
    for (double us : r.samples) out.push_back(us > 0 ? 1e-3 / us : 0);
    return out;
}

std::vector<double> FloorProbes::groups_per_ns(const std::vector<timing::Result> &t) const {
    return added() ? rates(t.at(size_t(first_))) : std::vector<double>();
}

std::vector<double> FloorProbes::read_gbps(const std::vector<timing::Result> &t, size_t b) const {
    return added() ? rates(t.at(size_t(first_) + 1 + b)) : std::vector<double>();
}

size_t product_weight_bytes(size_t rows, size_t cols, int k_w) {
    return rows * ((cols + 63) / 64) * 8 * size_t(k_w) + rows * size_t(k_w) * sizeof(float);
}

ProductFloor product_floor(size_t rows, size_t cols, int k_w, int k_a, size_t batch,
                           double groups_per_ns, double gbps) {
    ProductFloor f;
    const double groups =
        double(rows) * double((cols + 63) / 64) * k_w * k_a * double(batch) / 8.0;
    if (groups_per_ns > 0) f.alu_us = groups / groups_per_ns / 1000.0;
    if (gbps > 0) f.memory_us = double(product_weight_bytes(rows, cols, k_w)) / gbps / 1000.0;
    return f;
}

}  // namespace amq::bench
