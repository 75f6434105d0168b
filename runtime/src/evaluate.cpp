// Perplexity of a language model on a text file: see amq/evaluate.h.
#include "amq/evaluate.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace amq {

std::vector<int64_t> read_text_tokens(const std::string &path,
                                      const std::vector<std::string> &vocab) {
    std::ifstream f(path);
    if (!f) throw Error(path + ": cannot open the text file");
    std::unordered_map<std::string, int64_t> index;
    for (size_t i = 0; i < vocab.size(); ++i) index.emplace(vocab[i], int64_t(i));
    const auto unk = index.find("<unk>"), eos = index.find("<eos>");
    if (eos == index.end()) throw Error("the model's vocabulary has no <eos>");
    std::vector<int64_t> ids;
    std::string line, word;
    for (size_t line_no = 1; std::getline(f, line); ++line_no) {
        std::istringstream words(line);
        while (words >> word) {
            auto it = index.find(word);
            if (it == index.end()) {
                if (unk == index.end())
                    throw Error(path + ":" + std::to_string(line_no) + ": word '" + word +
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

void check_lm(const Model &model, const std::string &label) {
    if (!model.shape().lm())
        throw Error(label + " is not a language model (no embedding and decoder)");
}

}  // namespace

Perplexity perplexity(const std::shared_ptr<const Model> &model, const std::vector<int64_t> &ids,
                      const std::function<void(size_t, size_t)> &progress) {
    check_lm(*model, "the model");
    if (ids.size() < 2)
        throw Error("perplexity: " + std::to_string(ids.size()) + " tokens, expected at least 2");
    const size_t V = model->shape().vocab_size, predictions = ids.size() - 1;
    Session session(model, 1);
    double nll = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = thread_cpu_seconds();
    for (size_t t = 0; t < predictions; ++t) {
        session.step_tokens(&ids[t]);
        const float *logits = session.logits();
        // -log p(next) = lse - logit(next): the log-probabilities are not written.
        nll += double(log_softmax(logits, V, nullptr)) - double(logits[size_t(ids[t + 1])]);
        if (progress && (t % 256 == 0 || t + 1 == predictions)) progress(t + 1, predictions);
    }
    Perplexity p;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.cpu_seconds = thread_cpu_seconds() - cpu0;
    p.tokens = predictions;
    p.perplexity = std::exp(nll / double(predictions));
    return p;
}

Perplexity evaluate_text(const std::shared_ptr<const Model> &model, const std::string &model_label,
                         const std::string &path, size_t limit,
                         const std::function<void(size_t, size_t)> &progress) {
    check_lm(*model, model_label);
    if (model->vocab().size() != model->shape().vocab_size)
        throw Error(model_label + ": no vocabulary in the metadata, cannot read words");
    std::vector<int64_t> ids = read_text_tokens(path, model->vocab());
    if (limit && ids.size() > limit + 1) ids.resize(limit + 1);
    if (ids.size() < 2) throw Error(path + ": fewer than 2 tokens");
    return perplexity(model, ids, progress);
}

}  // namespace amq
