// Timing of kernels side by side: warm-up, interleaved rounds, and repetitions
// until the medians are stable (or a cap), reported as median and spread.
#pragma once

#include <functional>
#include <vector>

namespace amq::tune {

struct TimingOptions {
    double round_ms = 1.0;   // each function runs about this long per round
    int min_rounds = 7;      // at least this many rounds
    int max_rounds = 41;     // at most this many
    double stable = 0.01;    // stop when every median moved less than this (relative)
    double max_seconds = 2;  // and never time longer than this
};

struct Timing {
    double median_us = 0;  // median over the rounds of the mean time per call
    double spread = 0;     // (p90 - p10) / median over the rounds
    int rounds = 0;
};

// Times `fns` in interleaved rounds, the order rotating from round to round:
// each round calls every function once untimed (so that none is timed right
// after another evicted its data from the caches), then times a calibrated
// number of calls. After min_rounds it stops
// once, for every function, the median over all rounds is within `stable` of
// the median over the first half. A function returning non-zero throws
// std::runtime_error.
std::vector<Timing> time_interleaved(const std::vector<std::function<int()>> &fns,
                                     const TimingOptions &options);

// Median and (p90 - p10) / median of `v` (0 for an empty vector).
double median_of(std::vector<double> v);
double spread_of(std::vector<double> v);

}  // namespace amq::tune
