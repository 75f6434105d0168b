// The interface every tunable pipeline implements (bgemv, bgemm, f32_gemv,
// lstm_cell, gru_cell, quantize_act): its knob space and pruning rules, the
// Halide pipeline built with the generator's own algorithm and schedule
// functions, and inputs with a scalar reference to check a kernel against.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "Halide.h"
#include "amq/autotune/knobs.h"
#include "amq/autotune/problem.h"

namespace amq::tune {

// Inputs and output of one kernel call, and the check of the output against
// the scalar reference.
class Invocation {
public:
    virtual ~Invocation() = default;
    // The argument called `name` as the JIT entry point wants it: a
    // halide_buffer_t * for a buffer, a pointer to the value for a scalar;
    // nullptr if there is no such argument.
    virtual const void *arg(const std::string &name) const = 0;
    // The output the wrong-result test fault changes (its first element).
    virtual halide_buffer_t *output() = 0;
    // Every output in the pipeline's order (a pipeline with several outputs,
    // e.g. lstm_cell's h and c, overrides this).
    virtual std::vector<halide_buffer_t *> outputs() { return {output()}; }
    // Fills the outputs with NaN, so that anything the kernel leaves unwritten fails check().
    virtual void poison_output() = 0;
    // "" if the output matches the reference within tolerance, else the first
    // mismatches (row, kernel value, reference value).
    virtual std::string check() const = 0;
    // What the runtime does with the output after each call, timed with the
    // kernel (bgemv: the copy of the rows out of a padded last tile).
    virtual void finish() {}
};

class TunablePipeline {
public:
    virtual ~TunablePipeline() = default;

    const Problem &problem() const { return problem_; }
    const KnobSpace &space() const { return space_; }
    // The hand defaults (schedules/defaults.json) with the held knobs, made
    // canonical by prune().
    Knobs defaults() const;

    // Knobs held at fixed values, set on every candidate (canonical()) and on
    // the defaults: a lower ISA variant's "runtime" knobs (runtime_knobs()).
    void hold(Knobs held) { held_ = std::move(held); }
    const Knobs &held() const { return held_; }
    // The held knobs set, then prune(): what the search calls.
    std::string canonical(Knobs &knobs) const;

    // Makes `knobs` canonical for this problem (a knob that cannot matter takes
    // its default value, so that equivalent candidates compare equal) and returns
    // "" if the candidate is worth compiling, or why it is skipped.
    virtual std::string prune(Knobs &knobs) const = 0;

    // The pipeline with the hand schedule (the generator's schedule function) and
    // these knobs. May throw Halide::CompileError.
    virtual Halide::Pipeline build(const Knobs &knobs) const = 0;
    // The algorithm alone, for an autoscheduler: the buffer constraints of the
    // data layout in `layout` (see autoscheduler_layouts()) and estimates set to
    // the problem's shape.
    virtual Halide::Pipeline build_unscheduled(const Knobs &layout) const = 0;
    // Data layouts offered to the autoschedulers (each is tried).
    virtual std::vector<Knobs> autoscheduler_layouts() const = 0;

    // Random inputs (seeded) and the reference output for a kernel built with
    // `knobs` (their layout knobs decide the buffers): on the problem's shape, or
    // with edge_shape on a small shape whose rows and columns are not multiples
    // of the tile and word sizes.
    virtual std::unique_ptr<Invocation> make_invocation(const Knobs &knobs,
                                                        bool edge_shape) const = 0;

protected:
    TunablePipeline(Problem problem, const KnobSpace &space)
        : problem_(std::move(problem)), space_(space) {}

private:
    Problem problem_;
    const KnobSpace &space_;
    Knobs held_ = Knobs::object();
};

// The pipeline named by problem.pipeline for the host `target` (the target
// decides e.g. how many vector registers there are). Throws naming the
// pipelines there are when it is unknown, or what is wrong with the problem.
std::unique_ptr<TunablePipeline> make_pipeline(const Problem &problem,
                                               const Halide::Target &target);
// Names of the pipelines make_pipeline knows.
std::vector<std::string> tunable_pipelines();

}  // namespace amq::tune
