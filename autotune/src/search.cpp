#include "amq/autotune/search.h"

#include <algorithm>
#include <stdexcept>

namespace amq::tune {
namespace {

// Spaces up to this many points are enumerated (to count and list the valid ones).
constexpr uint64_t kEnumerateLimit = 100000;

}  // namespace

Search::Search(const KnobSpace &space, Knobs start, Prune prune, SearchOptions options)
    : space_(space), start_(std::move(start)), prune_(std::move(prune)), o_(options) {
    if (o_.rungs < 1 || o_.eta < 2 || o_.batch < 1)
        throw std::invalid_argument("search: rungs >= 1, eta >= 2 and batch >= 1 expected");
    rng_.seed(o_.seed);
    prune_(start_);
    if (space_.size() > kEnumerateLimit) return;
    std::vector<std::string> valid;
    std::set<std::string> seen;
    for (uint64_t i = 0; i < space_.size(); ++i) {
        Knobs k = space_.at(i);
        const std::string reason = prune_(k);
        const std::string key = knobs_key(k);
        if (!reason.empty()) {
            pruned_.insert(key);
        } else if (seen.insert(key).second && k != start_) {
            valid.push_back(key);
            entry(k);
        }
    }
    if (valid.size() + 1 > o_.exhaustive_limit) return;
    exhaustive_ = true;
    std::shuffle(valid.begin(), valid.end(), rng_);
    all_ = std::move(valid);
}

Search::Entry &Search::entry(const Knobs &knobs) {
    const std::string key = knobs_key(knobs);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        Entry e;
        e.knobs = knobs;
        e.score.assign(size_t(o_.rungs), std::nullopt);
        e.measured.assign(size_t(o_.rungs), false);
        it = entries_.emplace(key, std::move(e)).first;
    }
    return it->second;
}

std::optional<Knobs> Search::fresh_candidate() {
    // The best few screened candidates, to mutate.
    std::vector<std::pair<double, std::string>> top;
    for (const auto &[key, e] : entries_)
        if (e.score[0]) top.push_back({*e.score[0], key});
    std::sort(top.begin(), top.end());
    if (top.size() > 3) top.resize(3);
    for (int attempt = 0; attempt < 200; ++attempt) {
        Knobs k;
        if (!top.empty() && std::uniform_int_distribution<int>(0, 1)(rng_)) {
            const auto &parent =
                top[std::uniform_int_distribution<size_t>(0, top.size() - 1)(rng_)];
            k = space_.mutate(entries_.at(parent.second).knobs, rng_);
        } else {
            k = space_.sample(rng_);
        }
        const std::string reason = prune_(k);
        const std::string key = knobs_key(k);
        if (!reason.empty()) {
            pruned_.insert(key);
            continue;
        }
        if (proposed0_.count(key)) continue;
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.measured[0]) continue;
        return k;
    }
    return std::nullopt;
}

std::vector<std::string> Search::new_batch() {
    std::vector<std::string> batch;
    const std::string start_key = knobs_key(start_);
    const bool first = proposed0_.empty();
    if (first) {
        entry(start_);
        batch.push_back(start_key);
        proposed0_.insert(start_key);
    }
    if (exhaustive_) {
        if (first) batch.insert(batch.end(), all_.begin(), all_.end());
    } else {
        while (batch.size() < o_.batch) {
            std::optional<Knobs> k = fresh_candidate();
            if (!k) break;
            entry(*k);
            batch.push_back(knobs_key(*k));
            proposed0_.insert(batch.back());
        }
    }
    proposed0_.insert(batch.begin(), batch.end());
    return batch;
}

bool Search::start_stage(int rung, std::vector<std::string> keys) {
    stage_ = std::move(keys);
    stage_rung_ = rung;
    for (const auto &key : stage_) {
        const Entry &e = entries_.at(key);
        if (!e.measured[size_t(rung)]) queue_.push_back({e.knobs, rung});
    }
    return !stage_.empty();
}

std::optional<Proposal> Search::next() {
    for (;;) {
        if (!queue_.empty()) {
            Proposal p = queue_.front();
            queue_.pop_front();
            return p;
        }
        // The current stage is measured: its best go on to the next rung.
        if (stage_rung_ >= 0 && stage_rung_ + 1 < o_.rungs) {
            const size_t r = size_t(stage_rung_);
            std::vector<std::pair<double, size_t>> ok;  // (score, position in the stage)
            for (size_t i = 0; i < stage_.size(); ++i) {
                const Entry &e = entries_.at(stage_[i]);
                if (!e.failed && e.score[r]) ok.push_back({*e.score[r], i});
            }
            std::stable_sort(ok.begin(), ok.end(),
                             [](const auto &a, const auto &b) { return a.first < b.first; });
            const size_t keep = ok.empty() ? 0 : (ok.size() + size_t(o_.eta) - 1) / size_t(o_.eta);
            std::vector<std::string> promoted;
            for (size_t i = 0; i < keep; ++i) promoted.push_back(stage_[ok[i].second]);
            const std::string start_key = knobs_key(start_);
            const bool start_ok = std::any_of(
                ok.begin(), ok.end(), [&](const auto &p) { return stage_[p.second] == start_key; });
            if (start_ok &&
                std::find(promoted.begin(), promoted.end(), start_key) == promoted.end())
                promoted.push_back(start_key);
            if (!promoted.empty()) {
                start_stage(stage_rung_ + 1, std::move(promoted));
                continue;
            }
        }
        std::vector<std::string> batch = new_batch();
        if (batch.empty()) return std::nullopt;
        start_stage(0, std::move(batch));
    }
}

void Search::observe(const Knobs &knobs, int rung, std::optional<double> score) {
    Entry &e = entry(knobs);
    const size_t r = size_t(std::clamp(rung, 0, o_.rungs - 1));
    e.measured[r] = true;
    e.score[r] = score;
    if (!score) e.failed = true;
}

std::optional<std::pair<Knobs, double>> Search::best() const {
    // The rung-0 screening is short and noisy; from rung 1 on, a candidate's
    // score is the mean of its full timings.
    auto combined = [](const Entry &e, int top) {
        if (top == 0) return *e.score[0];
        double sum = 0;
        int n = 0;
        for (int r = 1; r <= top; ++r)
            if (e.score[size_t(r)]) sum += *e.score[size_t(r)], ++n;
        return sum / n;
    };
    for (int r = o_.rungs - 1; r >= 0; --r) {
        std::optional<std::pair<Knobs, double>> b;
        for (const auto &[key, e] : entries_) {
            if (e.failed || !e.score[size_t(r)]) continue;
            const double s = combined(e, r);
            if (!b || s < b->second) b = std::make_pair(e.knobs, s);
        }
        if (b) return b;
    }
    return std::nullopt;
}

std::optional<double> Search::score(const Knobs &knobs) const {
    auto it = entries_.find(knobs_key(knobs));
    if (it == entries_.end()) return std::nullopt;
    for (int r = o_.rungs - 1; r >= 0; --r)
        if (it->second.score[size_t(r)]) return it->second.score[size_t(r)];
    return std::nullopt;
}

}  // namespace amq::tune
