// What this CPU can do for a binary product at all, measured with intrinsics:
// the throughput of the XOR + popcount + add group (one 512-bit vector of weight
// words against a broadcast activation word) and the streaming read bandwidth
// of a block of a given size. amq_bench_limits reports them; `amq bench gemv`
// and `amq bench rnn` time them in their own rounds (FloorProbes) to give each
// problem its floor (docs/PERFORMANCE.md, "The floors of this CPU").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "amq/timing.h"

namespace amq::bench {

// True when the CPU has the AVX-512 VPOPCNTDQ instructions the group loop uses.
bool cpu_limits_supported();

// The group loop on `vectors` vectors of `lanes` words (8: 512-bit, 4: 256-bit)
// at w, `passes` times; returns a checksum (so the work is not optimized away).
// vectors must be a multiple of 8, w 64-byte aligned.
uint64_t xor_popcnt_groups(const uint64_t *w, size_t vectors, size_t passes, int lanes);

// One streaming read of `vectors` 512-bit vectors at w (a multiple of 8,
// 64-byte aligned); returns a checksum.
uint64_t stream_read(const uint64_t *w, size_t vectors);

// One streaming pass over `vectors` 512-bit vectors at w (a multiple of 4,
// 64-byte aligned), each combined with k_a (1..4) broadcast words by the group
// above: the work of a bgemv per weight vector, at the speed memory delivers
// it. Needs cpu_limits_supported(); returns a checksum.
uint64_t stream_groups(const uint64_t *w, size_t vectors, int k_a);

// 64-byte aligned words filled with a fixed non-trivial pattern.
struct AlignedWords {
    explicit AlignedWords(size_t words);
    ~AlignedWords();
    AlignedWords(const AlignedWords &) = delete;
    AlignedWords &operator=(const AlignedWords &) = delete;
    uint64_t *data() { return p_; }

private:
    uint64_t *p_;
};

// The floor's two rates, timed as candidates of timing::time_interleaved in the
// same rounds as what they are the floor of: the group loop above on a 16 KB
// (L1) block, in groups per ns, and the streaming read of a block of each given
// size (rounded up to whole 512-byte blocks), in GB/s. The VM's speed drifts
// within a run (the ALU rate of one process has measured 2.75 and 4.65 G groups
// per ns in two runs a minute apart), so a time is divided by the floor of its
// own round and the ratios' median taken (timing::median_ratio).
class FloorProbes {
public:
    // A read probe per block size in read_bytes.
    explicit FloorProbes(const std::vector<size_t> &read_bytes);
    ~FloorProbes();
    // Appends the ALU probe, then the read probes, to cands; nothing without
    // cpu_limits_supported().
    void add_to(std::vector<timing::Candidate> &cands);
    bool added() const { return first_ >= 0; }
    // After time_interleaved on those candidates: per round, the groups per ns
    // and the read bandwidth (GB/s) of block b; empty when not added.
    std::vector<double> groups_per_ns(const std::vector<timing::Result> &t) const;
    std::vector<double> read_gbps(const std::vector<timing::Result> &t, size_t b) const;

private:
    std::vector<double> rates(const timing::Result &r) const;
    std::unique_ptr<AlignedWords> alu_;
    std::vector<std::unique_ptr<AlignedWords>> blocks_;
    std::vector<size_t> vectors_;
    long first_ = -1;  // index of the ALU probe in the candidates
};

// The floor of a binary product rows x cols, k_w x k_a bits, over `batch`
// activation vectors: its groups (rows x ceil(cols/64) x k_w x k_a x batch / 8)
// at groups_per_ns, and its weight bytes (read once) at gbps.
struct ProductFloor {
    double alu_us = 0, memory_us = 0;
    double bound_us() const { return alu_us > memory_us ? alu_us : memory_us; }
};
size_t product_weight_bytes(size_t rows, size_t cols, int k_w);
ProductFloor product_floor(size_t rows, size_t cols, int k_w, int k_a, size_t batch,
                           double groups_per_ns, double gbps);

}  // namespace amq::bench
