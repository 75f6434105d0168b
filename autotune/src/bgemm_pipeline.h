// bgemm (generators/bgemm.h), the binary product for a batch of activation
// vectors, as a tunable pipeline. Its weights are in bgemv's layout and tile
// (the build gives bgemm bgemv's): they are part of the problem, not knobs.
#pragma once

#include "amq/autotune/pipeline.h"

namespace amq::tune {

class BgemmPipeline : public TunablePipeline {
public:
    // Throws std::invalid_argument naming a bad shape, batch, bit pair, weight
    // layout or thread count.
    BgemmPipeline(const Problem &problem, const Halide::Target &target);

    // Rules: with one thread parallel_tiles takes its default; accumulators and
    // max_batch_tile matter only through the batch tile they give at this batch
    // (amq/batch_tile.h), so candidates with the same tile are one (written with
    // the hand defaults' values where they give that tile); skipped are an
    // unroll longer than a row's words, counters of a batch tile (tile x k_w x
    // k_a x items u64) that need more vector registers than the target has, and
    // with threads a task size that leaves a single task.
    std::string prune(Knobs &knobs) const override;
    Halide::Pipeline build(const Knobs &knobs) const override;
    Halide::Pipeline build_unscheduled(const Knobs &layout) const override;
    std::vector<Knobs> autoscheduler_layouts() const override;
    std::unique_ptr<Invocation> make_invocation(const Knobs &knobs, bool edge_shape) const override;

    // The items per batch tile a kernel built with `knobs` counts together at
    // `batch` items (what the runtime passes as batch_tile).
    int batch_tile(const Knobs &knobs, size_t batch) const;

private:
    Halide::Target target_;
};

}  // namespace amq::tune
