// The fused recurrent cells (generators/lstm_cell.h, gru_cell.h) as tunable
// pipelines: one class, the cell named by problem.pipeline.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class CellPipeline : public TunablePipeline {
public:
    // problem.pipeline is "lstm_cell" or "gru_cell"; rows is the hidden size,
    // batch the items. Throws std::invalid_argument naming what is wrong.
    CellPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: skipped are a vector wider than the hidden units (rounded up to the
    // target's f32 lanes), with one thread any parallel_batch (the cell has no
    // run-time switch: its parallel loop would only add the thread pool's
    // overhead), and a parallel_batch that leaves a single task.
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;

private:
    bool lstm_;
    Halide::Target target_;
};

}  // namespace amq::tune
