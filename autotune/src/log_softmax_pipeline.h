// log_softmax (generators/log_softmax.h), the language model's head over the
// vocabulary, as a tunable pipeline.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class LogSoftmaxPipeline : public TunablePipeline {
public:
    // problem.cols is the vocabulary size (rows 1, no bits). Throws
    // std::invalid_argument naming what is wrong.
    LogSoftmaxPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: skipped are more lanes than values, and an unrolled width
    // (vector x unroll) above the values.
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;
};

}  // namespace amq::tune
