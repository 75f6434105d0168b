// The tuned schedules file, schedules/<cpu-id>.json: the best knobs per
// (pipeline, shape, bits, threads) for one CPU, plus a "pipelines" section of
// the same structure as schedules/defaults.json, so that the build can use the
// file in place of the defaults (cmake -DAMQ_SCHEDULES=...).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/knobs.h"
#include "amq/autotune/problem.h"

namespace amq::tune {

struct TunedEntry {
    Problem problem;
    Knobs knobs;
    double tuned_us = 0, default_us = 0;  // measured side by side
    std::string time;                     // UTC, when tuned
};

// "<cpu-id>.json"
std::string schedules_file_name(const CpuIdentity &cpu);

// Adds `entry` to the file at `path` (replacing the entry of the same pipeline,
// shape, bits and threads), creating the file when it is missing, and rewrites
// its "pipelines" section: the hand defaults, where each tuned pipeline takes
// the knobs of its entry with the most work (rows x cols x k_w x k_a). Throws
// std::runtime_error naming the file if it cannot be read, belongs to another
// CPU, or cannot be written.
void update_schedules_file(const std::string &path, const CpuIdentity &cpu,
                           const std::string &halide_version, const std::string &target,
                           const TunedEntry &entry);

// The file's text for `doc`: JSON whose first line names the generator.
std::string schedules_file_text(const nlohmann::ordered_json &doc);

}  // namespace amq::tune
