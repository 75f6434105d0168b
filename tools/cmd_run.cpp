// amq run: a model on the sequences of an inputs file, outputs to a file.
// amq eval: the word-level perplexity of a language model on a text file.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "amq/rnn.h"
#include "amq/run_inputs.h"
#include "amq/safetensors.h"
#include "commands.h"
#include "progress.h"

namespace amq::tools {
namespace {

// --threads: at least 1; more than the machine's processors is clamped, with a note.
void apply_threads(int threads) {
    check_range("--threads", threads, 1, 4096);
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    if (threads > cores) {
        std::cerr << "amq: note: --threads " << threads << " is more than the " << cores
                  << " processors here; using " << cores << "\n";
        threads = cores;
    }
    set_num_threads(threads);
}

struct RunArgs {
    std::string model, inputs, outputs;
    int threads = 1;
    size_t chunk_steps = 0;  // 0: as many steps as fit in kChunkBytes
};

// The buffers of one chunk (inputs, h, logits) take at most this many bytes,
// unless one step alone takes more; memory does not grow with the length T.
constexpr size_t kChunkBytes = size_t(64) << 20;

// The sequence in chunks of steps: each chunk read from the inputs file, run
// (the Session keeps h and c from one chunk to the next, so the results are
// those of one run over all T steps) and written into the outputs file at its
// place, whose header (sizes from T, B, hidden, vocab) is written first.
void run_run(const RunArgs &a) {
    apply_threads(a.threads);
    const auto model = Model::load(a.model);
    const RnnShape &s = model->shape();
    const RunInputs in = RunInputs::open(a.inputs, s);
    const size_t T = in.steps(), B = in.batch(), W = s.output_size(), V = s.vocab_size;
    const int64_t LD = int64_t(s.layers) * s.directions();
    const bool lm = in.tokens(), lstm = s.arch == Arch::lstm;

    const size_t step_bytes =
        B * (in.width() * (lm ? sizeof(int64_t) : sizeof(float)) + (W + V) * sizeof(float));
    size_t chunk = a.chunk_steps ? a.chunk_steps : std::max<size_t>(1, kChunkBytes / step_bytes);
    // The reverse direction of a bidirectional model needs the whole sequence.
    chunk = s.bidirectional ? T : std::min(chunk, T);

    std::vector<st::FileWriter::Tensor> tensors = {
        {"h", st::DType::F32, {int64_t(T), int64_t(B), int64_t(W)}},
        {"h_n", st::DType::F32, {LD, int64_t(B), int64_t(s.h_size())}}};
    if (lstm) tensors.push_back({"c_n", st::DType::F32, {LD, int64_t(B), int64_t(s.hidden_size)}});
    if (lm) tensors.push_back({"logits", st::DType::F32, {int64_t(T), int64_t(B), int64_t(V)}});
    st::FileWriter out(a.outputs, {{"format", "amq-outputs"}, {"model", a.model}}, tensors);

    Session session(model, B);
    if (!in.h0().empty() || !in.c0().empty())
        session.set_state(in.h0().empty() ? nullptr : in.h0().data(),
                          in.c0().empty() ? nullptr : in.c0().data());
    std::vector<float> x(lm ? 0 : chunk * B * s.input_size), h(chunk * B * W),
        logits(lm ? chunk * B * V : 0);
    std::vector<int64_t> ids(lm ? chunk * B : 0), lengths(in.lengths().size());
    double secs = 0;
    for (size_t t0 = 0; t0 < T; t0 += chunk) {
        const size_t n = std::min(chunk, T - t0);
        if (lm)
            in.read_tokens(t0, n, ids.data());
        else
            in.read_x(t0, n, x.data());
        // The valid steps of each sequence within this chunk (0 once it ended).
        for (size_t b = 0; b < lengths.size(); ++b)
            lengths[b] = std::clamp<int64_t>(in.lengths()[b] - int64_t(t0), 0, int64_t(n));
        const auto start = std::chrono::steady_clock::now();
        if (lm)
            session.run_tokens(ids.data(), n, h.data(), logits.data());
        else
            session.run(x.data(), n, h.data(), lengths.empty() ? nullptr : lengths.data());
        secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        out.write(0, uint64_t(t0) * B * W * sizeof(float), h.data(), n * B * W * sizeof(float));
        if (lm)
            out.write(tensors.size() - 1, uint64_t(t0) * B * V * sizeof(float), logits.data(),
                      n * B * V * sizeof(float));
    }
    std::vector<float> h_n(session.h_state_size()), c_n(session.c_state_size());
    session.get_state(h_n.data(), lstm ? c_n.data() : nullptr);
    out.write(1, 0, h_n.data(), h_n.size() * sizeof(float));
    if (lstm) out.write(2, 0, c_n.data(), c_n.size() * sizeof(float));
    out.finish();
    std::fprintf(stderr,
                 "amq run: %zu steps x %zu sequences in %.3f s (%.1f us per step), wrote %s\n", T,
                 B, secs, secs * 1e6 / double(T), a.outputs.c_str());
}

struct EvalArgs {
    std::string model, text;
    int threads = 1;
    size_t limit = 0;
    bool json = false;
};

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

void run_eval(const EvalArgs &a) {
    apply_threads(a.threads);
    const auto model = Model::load(a.model);
    const RnnShape &s = model->shape();
    if (!s.lm()) throw UsageError(a.model + " is not a language model (no embedding and decoder)");
    if (model->vocab().size() != s.vocab_size)
        throw std::runtime_error(a.model + ": no vocabulary in the metadata, cannot read words");
    std::vector<int64_t> ids = read_tokens(a.text, model->vocab());
    if (a.limit && ids.size() > a.limit + 1) ids.resize(a.limit + 1);
    if (ids.size() < 2) throw std::runtime_error(a.text + ": fewer than 2 tokens");
    Session session(model, 1);
    std::vector<float> logp(s.vocab_size);
    const size_t predictions = ids.size() - 1;
    Progress progress("eval", predictions, "tokens");
    double nll = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t t = 0; t < predictions; ++t) {
        session.step_tokens(&ids[t]);
        log_softmax(session.logits(), s.vocab_size, logp.data());
        nll -= double(logp[size_t(ids[t + 1])]);
        if (t % 256 == 0 || t + 1 == predictions) progress.update(t + 1);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ppl = std::exp(nll / double(predictions));
    if (a.json) {
        std::cout << "{\"model\": \"" << a.model << "\", \"text\": \"" << a.text
                  << "\", \"tokens\": " << predictions << ", \"perplexity\": " << ppl
                  << ", \"tokens_per_second\": " << double(predictions) / secs << "}\n";
    } else {
        std::printf("perplexity %.2f over %zu tokens of %s (%.0f tokens/s)\n", ppl, predictions,
                    a.text.c_str(), double(predictions) / secs);
    }
}

}  // namespace

void add_run_commands(CLI::App &app) {
    auto r = std::make_shared<RunArgs>();
    auto *run = app.add_subcommand(
        "run",
        "Run a model on the sequences of an inputs file: 'x' (F32 [T, B, input_size]) or "
        "'tokens' (I64 [T, B]), and optionally 'h0' (F32 [layers * directions, B, h_size]), "
        "'c0' (LSTM: F32 [layers * directions, B, hidden]) and 'lengths' (I64 [B], each "
        "1..T, as pack_padded_sequence); writes 'h' (F32 [T, B, directions * h_size]: "
        "the last layer's outputs, 0 past a sequence's length), the final state 'h_n' and "
        "'c_n' (LSTM) in the layout of h0 and c0, and, for a language model, 'logits' "
        "(F32 [T, B, vocab])");
    run->add_option("model", r->model, "Model (.amq or float .safetensors)")->required();
    run->add_option("--inputs", r->inputs, "Inputs (.safetensors)")->required();
    run->add_option("--outputs", r->outputs, "Outputs to write (.safetensors)")->required();
    run->add_option("--threads", r->threads, "Kernel threads (default 1)");
    run->add_option("--chunk-steps", r->chunk_steps,
                    "Steps read, run and written at a time (default: as many as fit in 64 MiB; "
                    "the outputs do not depend on it)")
        ->check(CLI::Range(size_t(1), size_t(1) << 40));
    run->callback([r] { run_run(*r); });

    auto e = std::make_shared<EvalArgs>();
    auto *eval = app.add_subcommand(
        "eval",
        "Word-level perplexity of a language model on a text file (words split on "
        "spaces, <eos> at each line end, unknown words as <unk>)");
    eval->add_option("model", e->model, "Language model (.amq or float .safetensors)")->required();
    eval->add_option("--text", e->text, "Text file")->required();
    eval->add_option("--threads", e->threads, "Kernel threads (default 1)");
    eval->add_option("--limit", e->limit, "Evaluate only the first N predictions");
    eval->add_flag("--json", e->json, "Print one JSON object");
    eval->callback([e] { run_eval(*e); });
}

}  // namespace amq::tools
