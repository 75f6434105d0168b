// Candidate evaluation: compile a candidate schedule (JIT, host target), check
// its output against the scalar reference, and time it side by side with the
// hand defaults -- all in a child process, so that any failure becomes a
// recorded error kind and the search goes on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Halide.h"
#include "amq/autotune/jit_kernel.h"
#include "amq/autotune/knobs.h"
#include "amq/autotune/pipeline.h"
#include "amq/autotune/timing.h"

namespace amq::tune {

enum class ErrorKind { ok, compile_error, runtime_error, wrong_result, crash, timeout };
const char *kind_name(ErrorKind kind);
// False for a name that is not a kind.
bool parse_kind(const std::string &name, ErrorKind &kind);

// Test hook: makes a candidate fail on purpose, at the step where such a
// failure would really happen (an invalid schedule directive; a changed output
// value; SIGSEGV, SIGILL or an endless wait instead of the kernel call).
enum class Fault { none, compile_error, wrong_result, crash, illegal_instruction, hang };

// Machine description handed to an autoscheduler (Halide::MachineParams).
struct MachineSetup {
    int parallelism = 1;
    uint64_t last_level_cache = 0;  // bytes
    float balance = 40;             // cost of a load vs. an arithmetic op
};

struct Candidate {
    // The hand schedule's knobs; with an autoscheduler, the data layout only.
    Knobs knobs;
    std::string autoscheduler;  // empty: the hand schedule
    MachineSetup machine;       // with an autoscheduler
    Fault fault = Fault::none;
    // Check also on a small shape that is a multiple of no tile: a hand schedule
    // goes into kernels for every shape. Off for the autoschedulers, which are
    // given estimates for the one shape they are compared on.
    bool check_edge_shape = true;

    // "layout=tiled tile=8 ..." or "Adams2019 layout=plane_major tile=1 llc=1048576"
    std::string str() const;
};

struct Measurement {
    ErrorKind kind = ErrorKind::ok;
    std::string error;  // what went wrong (kind != ok)
    Timing kernel;      // the candidate
    Timing baseline;    // the hand defaults, timed in the same rounds
    double compile_ms = 0;
    double seconds = 0;  // wall time of the child

    bool ok() const { return kind == ErrorKind::ok; }
    // Candidate time over baseline time: below 1 is faster than the defaults.
    double ratio() const {
        return ok() && baseline.median_us > 0 ? kernel.median_us / baseline.median_us : 0;
    }
};

struct EvalOptions {
    Halide::Target target;
    double timeout_seconds = 60;  // per child process
};

class Evaluator {
public:
    // Compiles the baseline (the pipeline's hand defaults) in this process, once,
    // before any child is forked: every child inherits it.
    Evaluator(const TunablePipeline &pipeline, EvalOptions options);

    // One candidate in its own child process.
    Measurement evaluate(const Candidate &candidate, const TimingOptions &timing) const;
    // All candidates compiled and checked in one child and timed in the same
    // interleaved rounds as the baseline, so that they compare fairly. A
    // candidate that fails is reported so; if the child dies, all are.
    std::vector<Measurement> evaluate_together(const std::vector<Candidate> &candidates,
                                               const TimingOptions &timing) const;

    const TunablePipeline &pipeline() const { return pipeline_; }
    const Knobs &baseline_knobs() const { return baseline_knobs_; }
    const EvalOptions &options() const { return options_; }

private:
    const TunablePipeline &pipeline_;
    EvalOptions options_;
    Knobs baseline_knobs_;
    std::unique_ptr<JitKernel> baseline_;
};

}  // namespace amq::tune
