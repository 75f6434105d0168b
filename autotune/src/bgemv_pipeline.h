// bgemv (generators/bgemv.h) as a tunable pipeline; see pipeline.h.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class BgemvPipeline : public TunablePipeline {
public:
    // Throws std::invalid_argument naming a bad shape, bit pair or thread count.
    BgemvPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: with one thread parallel_tiles takes its default (the serial
    // variant runs); skipped are an unroll longer than a row's words, a tile
    // larger than the rows, more counters (tile x k_w x k_a u64) than the
    // target's vector registers hold, and with threads a task size that leaves
    // a single task.
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;

private:
    Halide::Target target_;
};

}  // namespace amq::tune
