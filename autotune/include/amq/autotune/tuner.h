// One tuning run, as `amq tune` does it: resume from the records, search the
// knob space within a budget (every candidate compiled, checked and timed
// against the hand defaults in a child process, every result appended to the
// records), optionally run Halide's autoschedulers, then time the winner, the
// hand defaults and the best run of each autoscheduler side by side in one
// process, and write the winner to the tuned schedules file.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/evaluate.h"
#include "amq/autotune/problem.h"
#include "amq/autotune/records.h"
#include "amq/autotune/search.h"
#include "amq/autotune/timing.h"

namespace amq::tune {

struct TuneOptions {
    Problem problem;
    // The kernel variant tuned ("avx512", "avx2", "sse41"; isa_variants()): the
    // JIT target is the host's features capped to it. "" = the host's best.
    std::string isa;
    double budget_seconds = 120;  // for the search (the comparisons after it come on top)
    int max_trials = 0;           // evaluations of the search; 0 = no limit
    std::string records_path;     // "" = keep no records
    std::string schedules_path;   // "" = write no schedules file
    bool compare_autoschedulers = false;
    double candidate_timeout_seconds = 60;
    // Rung 0 (screening), the later rungs, and the closing side-by-side comparison.
    TimingOptions screen_timing{0.5, 5, 15, 0.02, 0.5};
    TimingOptions full_timing{1.0, 9, 41, 0.01, 2.0};
    TimingOptions final_timing{1.0, 15, 61, 0.005, 4.0};
    SearchOptions search;
    // Test hook: candidates whose knobs_key() is listed fail on purpose.
    std::map<std::string, Fault> faults;
};

struct AutoschedulerResult {
    std::string name;
    std::optional<double> us;     // its best run, timed in the closing comparison
    std::optional<double> ratio;  // that run's time / the defaults' time in its own process
    std::string reason;           // why there is no time
    Candidate best;               // its best run
    int runs = 0, failed_runs = 0;
};

struct TuneReport {
    Problem problem;
    CpuIdentity cpu;
    std::string isa;  // the kernel variant tuned
    std::string target, halide_version;
    Knobs tuned_knobs, default_knobs;
    double tuned_us = 0, default_us = 0;  // the closing comparison
    // The knobs the build gives the pipeline now (the schedules file's
    // "pipelines" entry, top ISA variant only) and their time in the same
    // closing comparison; common_us 0 when there is no schedules file.
    Knobs common_knobs;
    double common_us = 0;
    bool kept_default = false;  // the search's winner was not faster than the defaults there
    bool autoschedulers_compared = false;
    std::vector<AutoschedulerResult> autoschedulers;
    int trials = 0, failures = 0, resumed = 0;
    size_t pruned = 0;
    std::map<std::string, int> failure_kinds;
    bool exhaustive = false, search_complete = false;
    std::string search_end;  // "complete", "budget" or "trial limit"
    double search_seconds = 0, total_seconds = 0;
    double noise = 0;  // (p90 - p10) / median of the defaults' time over the trials
    std::string records_path, schedules_path;

    // The --json object of `amq tune` (docs/TUNING.md).
    nlohmann::ordered_json to_json() const;
    // The fastest autoscheduler, if any ran.
    const AutoschedulerResult *best_autoscheduler() const;
};

struct TrialEvent {
    const Record &record;
    int trials = 0, failures = 0;
    std::optional<double> best_ratio;  // best score so far (time / defaults' time)
    double best_us = 0;                // that ratio times the defaults' latest time
    double elapsed_seconds = 0, budget_seconds = 0;
};

struct TuneCallbacks {
    std::function<void(const TrialEvent &)> on_trial;
    std::function<void(const std::string &)> status;  // "running Adams2019 (3/8)"
    std::function<void(const std::string &)> warn;    // skipped record lines and the like
};

// Throws std::invalid_argument for a bad problem and std::runtime_error when
// the records or schedules file cannot be written.
TuneReport tune(const TuneOptions &options, const TuneCallbacks &callbacks = {});

}  // namespace amq::tune
