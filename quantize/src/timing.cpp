#include "amq/timing.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

namespace amq::timing {
namespace {

// Calls `c` `calls` times; the mean time per call and unit.
double time_calls(const Candidate &c, int calls) {
    const double t0 = now_us();
    for (int i = 0; i < calls; ++i) c.run();
    return (now_us() - t0) / calls / c.units_per_call;
}

void call(const std::function<void()> &f) {
    if (f) f();
}

}  // namespace

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1) + 0.5)];
}

double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

double spread(const std::vector<double> &v) {
    const double m = quantile(v, 0.5);
    return m > 0 ? (quantile(v, 0.9) - quantile(v, 0.1)) / m : 0;
}

double median_ratio(const std::vector<double> &a, const std::vector<double> &b) {
    if (a.empty() || a.size() != b.size()) return 0;
    std::vector<double> r(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
        if (!(b[i] > 0)) return 0;
        r[i] = a[i] / b[i];
    }
    return median(std::move(r));
}

std::vector<Result> time_interleaved(const std::vector<Candidate> &cands, const Options &o) {
    const double start = now_us();
    std::vector<int> calls(cands.size());
    for (size_t f = 0; f < cands.size(); ++f) {
        const Candidate &c = cands[f];
        call(c.before);
        c.run();  // warm-up
        const double per_call = std::max(time_calls(c, 3) * c.units_per_call, 0.02);
        calls[f] = std::max({1, o.min_calls, int(o.round_ms * 1000.0 / per_call + 0.5)});
        call(c.after);
    }
    std::vector<std::vector<double>> times(cands.size());
    std::vector<size_t> order(cands.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::mt19937 rng(o.seed);
    const int max_rounds = std::max(1, o.max_rounds);
    for (int r = 0; r < max_rounds; ++r) {
        std::shuffle(order.begin(), order.end(), rng);
        for (const size_t f : order) {
            const Candidate &c = cands[f];
            call(c.before);
            if (o.warm_each_round) c.run();
            times[f].push_back(time_calls(c, calls[f]));
            call(c.after);
        }
        const int done = r + 1;
        if (done < o.min_rounds) continue;
        if (o.max_seconds > 0 && now_us() - start > o.max_seconds * 1e6) break;
        if (o.stable <= 0) continue;
        bool stable = true;
        for (const auto &t : times) {
            const double all = median(t);
            const double half = median(std::vector<double>(t.begin(), t.begin() + done / 2));
            stable = stable && std::abs(all - half) <= o.stable * all;
        }
        if (stable) break;
    }
    std::vector<Result> out;
    for (size_t f = 0; f < cands.size(); ++f)
        out.push_back({median(times[f]), spread(times[f]), int(times[f].size()), calls[f], times[f]});
    return out;
}

}  // namespace amq::timing
