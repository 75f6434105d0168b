#include "amq/autotune/timing.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

namespace amq::tune {
namespace {

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

void call_checked(const std::function<int()> &fn) {
    if (int rc = fn()) throw std::runtime_error("kernel returned error " + std::to_string(rc));
}

double time_calls(const std::function<int()> &fn, int calls) {
    const double t0 = now_us();
    for (int c = 0; c < calls; ++c) call_checked(fn);
    return (now_us() - t0) / calls;
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1) + 0.5)];
}

}  // namespace

double median_of(std::vector<double> v) { return quantile(std::move(v), 0.5); }

double spread_of(std::vector<double> v) {
    const double m = quantile(v, 0.5);
    return m > 0 ? (quantile(v, 0.9) - quantile(v, 0.1)) / m : 0;
}

std::vector<Timing> time_interleaved(const std::vector<std::function<int()>> &fns,
                                     const TimingOptions &o) {
    const double start = now_us();
    // Warm-up, then calls per round so that a round takes about round_ms.
    std::vector<int> calls(fns.size());
    for (size_t f = 0; f < fns.size(); ++f) {
        call_checked(fns[f]);
        double t = std::max(time_calls(fns[f], 3), 0.02);
        calls[f] = std::max(1, int(o.round_ms * 1000.0 / t));
    }
    std::vector<std::vector<double>> times(fns.size());
    for (int r = 0; r < std::max(1, o.max_rounds); ++r) {
        // The order rotates from round to round, so that none is always first.
        for (size_t k = 0; k < fns.size(); ++k) {
            const size_t f = (k + size_t(r)) % fns.size();
            call_checked(fns[f]);
            times[f].push_back(time_calls(fns[f], calls[f]));
        }
        const int done = r + 1;
        if (done < o.min_rounds) continue;
        if ((now_us() - start) > o.max_seconds * 1e6) break;
        bool stable = true;
        for (const auto &t : times) {
            const double all = median_of(t);
            const double half = median_of(std::vector<double>(t.begin(), t.begin() + done / 2));
            stable = stable && std::abs(all - half) <= o.stable * all;
        }
        if (stable) break;
    }
    std::vector<Timing> out;
    for (const auto &t : times) out.push_back({median_of(t), spread_of(t), int(t.size())});
    return out;
}

}  // namespace amq::tune
