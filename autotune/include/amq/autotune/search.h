// The search over a knob space: successive halving over batches of
// candidates. A batch is screened at rung 0 (a short timing); the best third
// goes on to rung 1 (a full timing), the best third of those to rung 2 (timed
// again), and the start point (the hand defaults) always goes on, so that the
// winner is compared with it at the same fidelity. Small spaces are one batch
// holding every valid candidate (exhaustive, in a seeded random order); large
// ones get batches of seeded random samples and mutations of the best so far.
//
// The search only proposes and keeps scores; the caller evaluates. Scores are
// candidate time / hand-default time measured side by side (lower is better),
// so results of earlier runs (the records) can be fed back in to resume.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "amq/autotune/knobs.h"

namespace amq::tune {

struct SearchOptions {
    uint64_t seed = 1;
    int rungs = 3;                 // rung 0 screens; 1 .. rungs-1 re-time the best
    int eta = 3;                   // the best 1/eta of a rung go on to the next
    size_t exhaustive_limit = 64;  // at most this many valid candidates: try them all
    size_t batch = 18;             // candidates per batch when sampling
};

struct Proposal {
    Knobs knobs;
    int rung = 0;
};

class Search {
public:
    // `prune` makes knobs canonical and returns "" when they are worth
    // evaluating (TunablePipeline::prune). `start` is evaluated first.
    using Prune = std::function<std::string(Knobs &)>;
    Search(const KnobSpace &space, Knobs start, Prune prune, SearchOptions options = {});

    // The next candidate to evaluate; nothing when the search is complete.
    std::optional<Proposal> next();
    // The result of evaluating `knobs` at `rung` (a proposal, or a record of an
    // earlier run): its score, or nothing when it failed.
    void observe(const Knobs &knobs, int rung, std::optional<double> score);

    // The best candidate so far, among those at the highest rung any candidate
    // reached: the lowest score there (from rung 1 on, the mean of the
    // candidate's scores at rungs 1 and up).
    std::optional<std::pair<Knobs, double>> best() const;
    // The score of `knobs` at the highest rung it was measured at.
    std::optional<double> score(const Knobs &knobs) const;

    bool exhaustive() const { return exhaustive_; }
    // Distinct candidates the pruning rules skipped (counted when enumerating).
    size_t pruned() const { return pruned_.size(); }
    // Valid candidates of an exhaustive search.
    size_t valid() const { return all_.size(); }

private:
    struct Entry {
        Knobs knobs;
        std::vector<std::optional<double>> score;  // per rung
        std::vector<bool> measured;                // per rung
        bool failed = false;
    };
    Entry &entry(const Knobs &knobs);
    std::vector<std::string> new_batch();
    std::optional<Knobs> fresh_candidate();
    bool start_stage(int rung, std::vector<std::string> keys);

    const KnobSpace &space_;
    Knobs start_;
    Prune prune_;
    SearchOptions o_;
    std::mt19937_64 rng_;
    bool exhaustive_ = false;
    std::vector<std::string> all_;  // exhaustive: every valid candidate, shuffled
    bool batch_given_ = false;      // exhaustive: the single batch was handed out
    std::set<std::string> pruned_;
    std::map<std::string, Entry> entries_;
    std::set<std::string> proposed0_;  // every candidate ever put into a batch
    std::vector<std::string> stage_;   // keys of the current stage
    int stage_rung_ = -1;
    std::deque<Proposal> queue_;
};

}  // namespace amq::tune
