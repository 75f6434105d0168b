#include "amq/autotune/pipeline.h"

#include <stdexcept>

#include "bgemm_pipeline.h"
#include "bgemv_pipeline.h"
#include "cell_pipeline.h"
#include "f32_gemv_pipeline.h"
#include "log_softmax_pipeline.h"
#include "quantize_act_pipeline.h"

namespace amq::tune {

Knobs TunablePipeline::defaults() const {
    Knobs k = hand_defaults(problem_.pipeline);
    prune(k);  // canonical form; the defaults are measured even where a rule would skip them
    return k;
}

std::vector<std::string> tunable_pipelines() {
    return {"bgemv", "bgemm", "f32_gemv", "lstm_cell", "gru_cell", "quantize_act", "log_softmax"};
}

std::unique_ptr<TunablePipeline> make_pipeline(const Problem &problem,
                                               const Halide::Target &target) {
    if (problem.pipeline == "bgemv") return std::make_unique<BgemvPipeline>(problem, target);
    if (problem.pipeline == "bgemm") return std::make_unique<BgemmPipeline>(problem, target);
    if (problem.pipeline == "f32_gemv") return std::make_unique<F32GemvPipeline>(problem, target);
    if (problem.pipeline == "lstm_cell" || problem.pipeline == "gru_cell")
        return std::make_unique<CellPipeline>(problem, target);
    if (problem.pipeline == "quantize_act")
        return std::make_unique<QuantizeActPipeline>(problem, target);
    if (problem.pipeline == "log_softmax")
        return std::make_unique<LogSoftmaxPipeline>(problem, target);
    std::string known;
    for (const auto &name : tunable_pipelines()) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("no tunable pipeline '" + problem.pipeline +
                                "' (tunable: " + known + ")");
}

}  // namespace amq::tune
