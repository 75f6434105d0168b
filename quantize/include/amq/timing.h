// The one timing harness of amq: `amq tune` (autotune/), `amq bench gemv`,
// `amq bench rnn` and the Google Benchmark helpers (bench/) all time with it,
// so that a figure of one compares with a figure of another.
//
// How candidates are timed side by side (time_interleaved):
//   - each is called once (warm-up), then a few calls set how many calls one
//     sample takes (about round_ms, at least min_calls);
//   - every round visits the candidates in a new random order (fixed seed):
//     turning the order by one each round keeps every candidate's successor,
//     and on large shapes the one after a big product finds its data in L3;
//   - in a round each candidate gets one untimed call (warm_each_round), so that
//     none is timed right after another evicted its data from the caches, then
//     one sample: the mean time per call over the calibrated calls;
//   - after min_rounds it stops once every candidate's median over all rounds
//     is within `stable` of its median over the first half (stable > 0), or
//     after max_seconds (> 0), or at max_rounds;
//   - the result: the median of the samples and their spread (p90 - p10) / median,
//     and the samples themselves in round order (a candidate's sample of round r
//     was taken in the same round as every other candidate's sample r, so that a
//     ratio of two candidates can be taken round by round).
// Plain C++ (quantize/ needs nothing else), so every part of amq may use it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace amq::timing {

// Microseconds of a monotonic clock.
double now_us();

// The q-quantile of v (nearest rank; 0 for an empty vector), its median, and
// (p90 - p10) / median (0 when the median is not positive).
double quantile(std::vector<double> v, double q);
double median(std::vector<double> v);
double spread(const std::vector<double> &v);

struct Options {
    double round_ms = 1.0;        // one sample takes about this long (calibrated calls)
    int min_rounds = 7;           // at least this many rounds
    int max_rounds = 41;          // at most this many
    double stable = 0.01;         // stop once every median moved less than this; 0: never
    double max_seconds = 0;       // and never time longer than this; 0: no limit
    int min_calls = 1;            // at least this many calls per sample
    bool warm_each_round = true;  // one untimed call before each sample
    uint32_t seed = 20261205u;    // of the random order of each round
};

// One thing to time. `run` is one call; `before` (optional) runs before each of
// its warm-up, calibration and samples, untimed (e.g. set the thread count),
// `after` (optional) after each sample, untimed (e.g. let idle threads settle).
// A sample is the time of a call divided by `units_per_call` (e.g. the time
// steps of one RNN sequence, for a time per step).
struct Candidate {
    std::function<void()> run;
    std::function<void()> before, after;
    double units_per_call = 1;
};

struct Result {
    double median_us = 0;  // median over the rounds of the mean time per call (per unit)
    double spread = 0;     // (p90 - p10) / median over the rounds
    int rounds = 0;
    int calls = 0;                // calls per sample
    std::vector<double> samples;  // the sample of each round, in round order
};

// The median over the rounds of a[r] / b[r] (two candidates' samples of the
// same rounds); 0 when they are empty or of different lengths, or a b[r] is not
// positive.
double median_ratio(const std::vector<double> &a, const std::vector<double> &b);

// Times the candidates as described above. An exception from a candidate
// propagates.
std::vector<Result> time_interleaved(const std::vector<Candidate> &candidates,
                                     const Options &options);

}  // namespace amq::timing
