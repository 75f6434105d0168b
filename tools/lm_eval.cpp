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

// Words of a text file with <eos> at the end of each line (as python/ptb.py).
std::vector<int64_t> read_tokens(const std::string &path, const std::vector<std::string> &vocab) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(path + ": cannot open the text file");
    std::unordered_map<std::string, int64_t> index;
    for (size_t i = 0; i < vocab.size(); ++i) index.emplace(vocab[i], int64_t(i));
    const auto unk = index.find("<unk>"), eos = index.find("<eos>");
    if (eos == index.end()) throw std::runtime_error("the model's vocabulary has no <eos>");
    std::vector<int64_t> ids;
    std::string line, word;
    for (size_t line_no = 1; std::getline(f, line); ++line_no) {
        std::istringstream words(line);
        while (words >> word) {
            auto it = index.find(word);
            if (it == index.end()) {
                if (unk == index.end())
                    throw std::runtime_error(path + ":" + std::to_string(line_no) + ": word '" +
                                             word +
                                             "' is not in the vocabulary, which has no <unk>");
                it = unk;
            }
            ids.push_back(it->second);
        }
        ids.push_back(eos->second);
    }
    return ids;
}

namespace {

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

LmScore score_lm(const std::shared_ptr<const Model> &model, const std::vector<int64_t> &ids,
                 const std::string &progress_label) {
    const RnnShape &s = model->shape();
    if (ids.size() < 2) throw std::runtime_error("fewer than 2 tokens to score");
    Session session(model, 1);
    LmScore r;
    r.tokens = ids.size() - 1;
    std::unique_ptr<Progress> progress;
    if (!progress_label.empty())
        progress = std::make_unique<Progress>(progress_label, r.tokens, "tokens");
    double nll = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = thread_cpu_seconds();
    for (size_t t = 0; t < r.tokens; ++t) {
        session.step_tokens(&ids[t]);
        const float *logits = session.logits();
        // -log p(next) = lse - logit(next): the log-probabilities are not written.
        nll += double(log_softmax(logits, s.vocab_size, nullptr)) - double(logits[ids[t + 1]]);
        if (progress && (t % 256 == 0 || t + 1 == r.tokens)) progress->update(t + 1);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.cpu_seconds = thread_cpu_seconds() - cpu0;
    r.perplexity = std::exp(nll / double(r.tokens));
    return r;
}

}  // namespace amq::tools
