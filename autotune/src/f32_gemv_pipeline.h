// f32_gemv (generators/f32_gemv.h), the float product, as a tunable pipeline.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class F32GemvPipeline : public TunablePipeline {
public:
    // Throws std::invalid_argument naming a bad shape or thread count, or bits.
    F32GemvPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: with one thread parallel_rows takes its default (the serial
    // variant runs); skipped are a vector that does not divide the panel, more
    // panels computed together than the rows have, outputs (panels x panel
    // floats) that need more vector registers than the target has, and with
    // threads a task size that leaves a single task.
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;

private:
    Halide::Target target_;
};

}  // namespace amq::tune
