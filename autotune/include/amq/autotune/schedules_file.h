// The tuned schedules file, schedules/<cpu-id>.json: the best knobs per
// (pipeline, shape, bits, threads) for one CPU, plus a "pipelines" section of
// the same structure as schedules/defaults.json, so that the build can use the
// file in place of the defaults (cmake -DAMQ_SCHEDULES=...). That is the top
// (AVX-512) variant's; "isa": {"avx2": {...}, "sse41": {...}} holds the same
// for each lower variant tuned ("pipelines" with only its tuned pipelines:
// a pipeline missing there builds with the top variant's knobs).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/knobs.h"
#include "amq/autotune/problem.h"
#include "amq/autotune/records.h"

namespace amq::tune {

struct TunedEntry {
    Problem problem;
    Knobs knobs;
    double tuned_us = 0, default_us = 0;  // measured side by side
    std::string time;                     // UTC, when tuned
    // The build's common knobs of the pipeline (the file's "pipelines" entry
    // when tuned), timed beside them; 0 = not measured.
    double common_us = 0;
};

// "<cpu-id>.json"
std::string schedules_file_name(const CpuIdentity &cpu);

// One knob set for the build of a pipeline, which makes one kernel per bit pair,
// not per shape: among the knob sets the search measured on every tuned
// one-thread problem of the pipeline (same CPU, Halide and target), the one
// whose geometric mean over the problems of (its time / the problem's best
// time) is lowest. Times are the ratios to the hand defaults measured in the
// same process, each knob set's at the highest rung it reached.
struct CommonKnobs {
    Knobs knobs;
    int problems = 0;    // tuned problems it was measured on
    double geomean = 0;  // geometric mean of time / best time (>= 1)
    double worst = 0;    // the largest of those
    std::string worst_problem;
};
// nullopt when fewer than two problems were tuned or no knob set was measured
// on all of them.
std::optional<CommonKnobs> common_knobs(const std::vector<Record> &records,
                                        const std::vector<Problem> &tuned,
                                        const std::string &pipeline, const CpuIdentity &cpu,
                                        const std::string &halide_version,
                                        const std::string &target);

// Adds `entry`, measured for the kernel variant `isa` ("" or the top variant:
// the top level; else the file's "isa" section of that variant) to the file at
// `path` (replacing the entry of the same pipeline, shape, bits and threads),
// creating the file when it is missing, and rewrites that section's
// "pipelines": (top level: the hand defaults, where) each tuned pipeline takes
// common_knobs() over `records` when there is such a set, else the knobs of its
// entry with the most work (rows x cols x k_w x k_a). `target` is the target
// the entry was measured on. Throws std::runtime_error naming the file if it
// cannot be read, belongs to another CPU, or cannot be written. For a lower
// variant, entries and records whose "runtime" knobs are not the top level's
// (runtime_knobs()) are left out: the build cannot use them.
void update_schedules_file(const std::string &path, const CpuIdentity &cpu,
                           const std::string &halide_version, const std::string &target,
                           const TunedEntry &entry, const std::vector<Record> &records = {},
                           const std::string &isa = "");

// One RNN step problem timed on the fused step kernel and on the separate
// kernels (amq tune --steps; bench/rnn_measure.h, measure_step_choice).
struct TunedStep {
    std::string cell;  // "lstm" or "gru"
    std::string bits;  // "W2A2"
    size_t hidden = 0, batch = 1;
    std::string call;  // "run" or "step"
    double fused_us = 0, separate_us = 0;  // per step, medians side by side
    std::string time;                      // UTC; "" = now
};
// The build's rule (cmake/amqManifest.cmake): the separate kernels when they are
// more than 3% faster, else the fused one.
bool step_separate_wins(double fused_us, double separate_us);
// Adds `steps` to the file's "steps" (replacing entries of the same cell, bits,
// hidden, batch and call; each with its "choice": separate where those kernels
// were more than 3% faster, as the build decides), creating the file with the
// hand defaults when it is missing. Throws std::runtime_error as
// update_schedules_file does, std::invalid_argument for a time that is not
// above 0.
void update_step_choices(const std::string &path, const CpuIdentity &cpu,
                         const std::vector<TunedStep> &steps);

// The knobs the build gives the top ISA variant of `pipeline` from the file at
// `path`: its "pipelines" entry over the hand defaults (the hand defaults when
// there is no such file or entry).
Knobs top_variant_knobs(const std::string &path, const std::string &pipeline);

// The file's text for `doc`: JSON whose first line names the generator.
std::string schedules_file_text(const nlohmann::ordered_json &doc);

}  // namespace amq::tune
