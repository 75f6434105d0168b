#include "amq/autotune/pipeline.h"

#include <stdexcept>

#include "bgemv_pipeline.h"

namespace amq::tune {

Knobs TunablePipeline::defaults() const {
    Knobs k = hand_defaults(problem_.pipeline);
    prune(k);  // canonical form; the defaults are measured even where a rule would skip them
    return k;
}

std::vector<std::string> tunable_pipelines() { return {"bgemv"}; }

std::unique_ptr<TunablePipeline> make_pipeline(const Problem &problem,
                                               const Halide::Target &target) {
    if (problem.pipeline == "bgemv") return std::make_unique<BgemvPipeline>(problem, target);
    std::string known;
    for (const auto &name : tunable_pipelines()) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("no tunable pipeline '" + problem.pipeline +
                                "' (tunable: " + known + ")");
}

}  // namespace amq::tune
