// Word-level evaluation of a language model (amq eval): the text as token ids,
// and the perplexity and speed of a model on them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "amq/evaluate.h"
#include "amq/rnn.h"

namespace amq::tools {

// The score of a model on a text: amq::Perplexity (amq/evaluate.h), whose
// tokens_per_cpu_second() is what --compare reports.
using LmScore = Perplexity;

// amq::read_text_tokens (amq/evaluate.h).
std::vector<int64_t> read_tokens(const std::string &path, const std::vector<std::string> &vocab);

// Predicts ids[t + 1] from ids[0..t] for every t, batch 1, the state carried over
// the whole text: the perplexity exp(mean -log p), and the time of the steps and
// log-softmax (the log_softmax kernel). `progress_label` non-empty: a progress
// line on stderr.
LmScore score_lm(const std::shared_ptr<const Model> &model, const std::vector<int64_t> &ids,
                 const std::string &progress_label = "");

// amq eval --compare: the float model quantized in memory with each
// configuration (or `default_compare_configs()`), then the .amq files of
// extra_models, each scored on the same tokens in the same run; one table.
// A configuration is "float", "wWaA" or "ternary" (ternary weights and
// activations), then comma-separated: "lm" (embedding and decoder quantized
// too), "lm=WxA[:METHOD]" (the embedding and, untied, the decoder at those
// bits), "act=METHOD", "NAME=WxA[:METHOD]" (as amq quantize --bits-for).
struct CompareArgs {
    std::string float_model, text;
    std::vector<std::string> configs, extra_models;
    size_t limit = 0;
    int rounds = 1;
    bool json = false;
};
const std::vector<std::string> &default_compare_configs();
void run_eval_compare(const CompareArgs &a);

}  // namespace amq::tools
