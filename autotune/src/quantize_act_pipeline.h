// quantize_act (generators/quantize_act.h), the online activation quantizer,
// as a tunable pipeline.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class QuantizeActPipeline : public TunablePipeline {
public:
    // problem.cols is the vector length, k_a the bits, iters the alternating
    // cycles. Throws std::invalid_argument naming what is wrong.
    QuantizeActPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: skipped is a pack_vector wider than a plane's bytes (8 per 64
    // values; 8 is always allowed).
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;

private:
    Halide::Target target_;
};

}  // namespace amq::tune
