// Word-level evaluation of a language model: see lm_eval.h.
#include "lm_eval.h"

#include <time.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "progress.h"

namespace amq::tools {

std::vector<int64_t> read_tokens(const std::string &path, const std::vector<std::string> &vocab) {
    return read_text_tokens(path, vocab);
}

LmScore score_lm(const std::shared_ptr<const Model> &model, const std::vector<int64_t> &ids,
                 const std::string &progress_label) {
    if (progress_label.empty()) return perplexity(model, ids);
    std::unique_ptr<Progress> progress;
    return perplexity(model, ids, [&](size_t done, size_t total) {
        if (!progress) progress = std::make_unique<Progress>(progress_label, total, "tokens");
        progress->update(done);
    });
}

}  // namespace amq::tools
