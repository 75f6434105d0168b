// Word-level perplexity of a language model on a text file: what `amq eval` and
// the Python module's amq.eval() compute, with the same tokenization as
// python/ptb.py (words split on spaces, <eos> at the end of each line, words
// outside the vocabulary as <unk>).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "amq/rnn.h"

namespace amq {

// The words of the text file at `path` as ids of `vocab`. Throws amq::Error when
// the file cannot be read, the vocabulary has no <eos>, or a word is not in a
// vocabulary without <unk> (naming the file, line and word).
std::vector<int64_t> read_text_tokens(const std::string &path,
                                      const std::vector<std::string> &vocab);

struct Perplexity {
    double perplexity = 0;
    size_t tokens = 0;   // predictions scored (ids.size() - 1)
    double seconds = 0;      // wall-clock time of the steps and the log-softmax
    double cpu_seconds = 0;  // CPU time of the calling thread over the same (the kernels run
                             // on it alone with one thread): what an idle core gives
    double tokens_per_second() const { return seconds > 0 ? double(tokens) / seconds : 0.0; }
    double tokens_per_cpu_second() const {
        return cpu_seconds > 0 ? double(tokens) / cpu_seconds : 0.0;
    }
};

// Runs `model` at batch 1 over ids (the state carried over the whole text) and
// scores each prediction of ids[t + 1] from ids[..t]. `progress`, if given, is
// called with (done, total) every 256 predictions and at the end. Throws
// amq::Error when the model is not a language model or there are fewer than 2 ids.
Perplexity perplexity(const std::shared_ptr<const Model> &model, const std::vector<int64_t> &ids,
                      const std::function<void(size_t, size_t)> &progress = {});

// The two above on a text file: its first limit + 1 tokens (all when limit is 0).
// Throws amq::Error when the model is not a language model or has no vocabulary;
// `model_label` (e.g. its path) names the model in those messages.
Perplexity evaluate_text(const std::shared_ptr<const Model> &model, const std::string &model_label,
                         const std::string &path, size_t limit = 0,
                         const std::function<void(size_t, size_t)> &progress = {});

}  // namespace amq
