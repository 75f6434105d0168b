// The records file: append-only JSON lines, one line per measured candidate,
// keyed by CPU, Halide version and target, pipeline, shape, bits and threads.
// A line that cannot be read is skipped with a warning, never fatal.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/evaluate.h"
#include "amq/autotune/problem.h"

namespace amq::tune {

constexpr int kRecordFormatVersion = 1;

struct Record {
    std::string time;  // UTC, ISO 8601
    CpuIdentity cpu;
    // The kernel variant measured ("avx512", "avx2", "sse41"): a line written
    // before records had "isa" was measured for the top variant.
    std::string isa;
    std::string halide_version, target;
    Problem problem;
    Candidate candidate;  // knobs, autoscheduler and machine setup (never a test fault)
    std::string source;   // "search", "autoscheduler" or "final" (the closing comparison)
    int rung = 0;         // the search's successive-halving rung
    Measurement measurement;

    // True when `other` was measured under the same conditions (CPU, ISA
    // variant, Halide, target, problem), so that their times compare.
    bool same_setting(const Record &other) const;
};

nlohmann::ordered_json record_to_json(const Record &r);
// Throws std::runtime_error naming the field that is missing or mistyped.
Record record_from_json(const nlohmann::json &j);

// UTC now, "2024-05-01T12:00:00Z".
std::string utc_now();

class RecordFile {
public:
    explicit RecordFile(std::string path) : path_(std::move(path)) {}
    const std::string &path() const { return path_; }

    // Every record in the file (none if it does not exist). A line that is not
    // a record (corrupt, truncated, another format version) is skipped and
    // reported through `warn` with the file and line number.
    std::vector<Record> load(const std::function<void(const std::string &)> &warn) const;
    // Appends one line, creating the file (and its directory) with a header line
    // saying it is generated. A truncated last line is closed first, so that it
    // spoils only itself. Throws std::runtime_error naming the file on failure.
    void append(const Record &r) const;

private:
    std::string path_;
};

}  // namespace amq::tune
