#include "amq/autotune/pipeline.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bgemm_pipeline.h"
#include "bgemv_pipeline.h"
#include "builtin_data.h"
#include "cell_pipeline.h"
#include "f32_gemv_pipeline.h"
#include "log_softmax_pipeline.h"
#include "quantize_act_pipeline.h"

namespace amq::tune {

Knobs TunablePipeline::defaults() const {
    Knobs k = hand_defaults(problem_.pipeline);
    canonical(k);  // the defaults are measured even where a rule would skip them
    return k;
}

std::string TunablePipeline::canonical(Knobs &knobs) const {
    for (const auto &[name, value] : held_.items()) knobs[name] = value;
    return prune(knobs);
}

std::vector<std::string> tunable_pipelines() {
    // schedules/manifest.json's pipelines with "tunable": true (built in).
    static const std::vector<std::string> names =
        nlohmann::json::parse(detail::builtin_defaults()).at("tunable").get<std::vector<std::string>>();
    return names;
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
