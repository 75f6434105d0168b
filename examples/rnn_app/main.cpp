// rnn_app: loads an LSTM/GRU (an .amq model, or a float .safetensors that it can
// quantize in memory) with the installed amq package, runs a few steps and prints
// a summary of h (and, for a language model, of the logits).
//
//   rnn_app MODEL [--steps N] [--quantize WxA] [--threads N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "HalideRuntime.h"  // halide_filter_metadata_t (from amq::kernels)
#include "amq/kernels.h"
#include "amq/quantize_model.h"
#include "amq/rnn.h"

// The binary products of the runner, to show which library each comes from (the
// installed amq::kernels, or a directory written by `amq generate`).
#define AMQ_META(W, A) amq_bgemv_w##W##a##A##_metadata
#define AMQ_META_ROW(w) AMQ_META(w, 1), AMQ_META(w, 2), AMQ_META(w, 3), AMQ_META(w, 4)
extern "C" {
#define AMQ_DECLARE(w, a) const halide_filter_metadata_t *AMQ_META(w, a)();
#define AMQ_DECLARE_ROW(w) AMQ_DECLARE(w, 1) AMQ_DECLARE(w, 2) AMQ_DECLARE(w, 3) AMQ_DECLARE(w, 4)
AMQ_DECLARE_ROW(1) AMQ_DECLARE_ROW(2) AMQ_DECLARE_ROW(3) AMQ_DECLARE_ROW(4)
}
using metadata_fn = const halide_filter_metadata_t *(*)();
const metadata_fn bgemv_metadata[4][4] = {
    {AMQ_META_ROW(1)}, {AMQ_META_ROW(2)}, {AMQ_META_ROW(3)}, {AMQ_META_ROW(4)}};

namespace {

struct Args {
    std::string model;
    int steps = 8, threads = 1, qw = 0, qa = 0;
};

int usage(const char *msg) {
    std::fprintf(stderr,
                 "rnn_app: %s\nusage: rnn_app MODEL [--steps N] [--quantize WxA] [--threads N]\n"
                 "  MODEL       an .amq model or a float .safetensors (PyTorch names)\n"
                 "  --steps N   time steps to run (1..100000, default 8)\n"
                 "  --quantize  quantize a float model in memory first (alternating, e.g. W2A2)\n"
                 "  --threads N kernel threads (default 1)\n",
                 msg);
    return 2;
}

bool parse_int(const char *s, int lo, int hi, int &out) {
    char *end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    out = int(v);
    return true;
}

struct Summary {
    double mean = 0, mean_abs = 0, min = INFINITY, max = -INFINITY;
};
Summary summarize(const float *x, size_t n) {
    Summary s;
    for (size_t i = 0; i < n; ++i) {
        s.mean += x[i], s.mean_abs += std::fabs(x[i]);
        s.min = std::min(s.min, double(x[i])), s.max = std::max(s.max, double(x[i]));
    }
    s.mean /= double(n), s.mean_abs /= double(n);
    return s;
}

size_t argmax(const float *x, size_t n) { return size_t(std::max_element(x, x + n) - x); }

}  // namespace

int main(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--steps") {
            if (!has_value || !parse_int(argv[++i], 1, 100000, a.steps))
                return usage("--steps expects an integer in 1..100000");
        } else if (arg == "--threads") {
            if (!has_value || !parse_int(argv[++i], 1, 1024, a.threads))
                return usage("--threads expects an integer in 1..1024");
        } else if (arg == "--quantize") {
            // W2A2 (or the alias 2x2): weight and activation bits.
            std::string v = has_value ? argv[++i] : "";
            if (v.size() == 4 && (v[0] == 'W' || v[0] == 'w') && (v[2] == 'A' || v[2] == 'a'))
                v = std::string(1, v[1]) + "x" + v[3];
            if (v.size() != 3 || v[1] != 'x' || v[0] < '1' || v[0] > '4' || v[2] < '1' ||
                v[2] > '4')
                return usage("--quantize expects W<w>A<a> with w and a in 1..4, e.g. W2A2");
            a.qw = v[0] - '0', a.qa = v[2] - '0';
        } else if (!arg.empty() && arg[0] == '-') {
            return usage(("unknown option " + arg).c_str());
        } else if (a.model.empty()) {
            a.model = arg;
        } else {
            return usage(("one model only, got '" + a.model + "' and '" + arg + "'").c_str());
        }
    }
    if (a.model.empty()) return usage("give a model file");

    try {
        amq::set_num_threads(a.threads);
        std::shared_ptr<const amq::Model> model;
        if (a.qw) {
            amq::ModelFile file = amq::load_model(a.model);
            if (file.quantized()) return usage("--quantize: the model is quantized already");
            amq::ModelQuantizeOptions o;
            o.weights.bits = a.qw;
            o.k_a = a.qa;
            model = amq::Model::from_file(amq::quantize_model(file, o));
        } else {
            model = amq::Model::load(a.model);
        }
        const amq::RnnShape &s = model->shape();
        std::printf("model: %s, %s, %d layer(s), input %zu, hidden %zu", a.model.c_str(),
                    s.arch == amq::Arch::lstm ? "LSTM" : "GRU", s.layers, s.input_size,
                    s.hidden_size);
        if (s.lm()) std::printf(", vocabulary %zu", s.vocab_size);
        if (model->quantized())
            std::printf(", W%dA%d (T = %d)\n", model->k_w(), model->k_a(), model->act_iters());
        else
            std::printf(", float\n");
        if (model->quantized()) {
            const halide_filter_metadata_t *m =
                bgemv_metadata[model->k_w() - 1][model->k_a() - 1]();
            std::printf("kernel: %s (Halide metadata target %s)\n", m->name, m->target);
        }
        // Per-problem variants linked in (schedules file "variants"): a matrix of
        // such a shape runs its own kernel, bound when the model was loaded.
        for (const amq::KernelInfo &k : amq::linked_kernels())
            if (k.variant)
                std::printf("variant: %s (%zux%zu %s, knobs %s)\n", k.name.c_str(), k.rows, k.cols,
                            k.bits.c_str(), k.knobs.c_str());
#ifdef RNN_APP_KERNELS
        std::printf("kernels generated by amq generate: %s\n", RNN_APP_KERNELS);
#endif

        amq::Session session(model, 1);
        std::mt19937 rng(7);
        std::vector<float> x(s.input_size);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> logp(s.vocab_size);
        int64_t token = 0;
        if (s.lm()) {  // start from "the" when the vocabulary has it
            const auto &v = model->vocab();
            const auto it = std::find(v.begin(), v.end(), "the");
            token = it == v.end() ? 0 : int64_t(it - v.begin());
        }
        for (int t = 0; t < a.steps; ++t) {
            if (s.lm()) {
                const int64_t in = token;
                session.step_tokens(&in);
                const float *logits = session.logits();
                amq::log_softmax(logits, s.vocab_size, logp.data());
                token = int64_t(argmax(logits, s.vocab_size));  // greedy continuation
                const Summary l = summarize(logits, s.vocab_size);
                const auto word = [&](int64_t id) {
                    return model->vocab().empty() ? std::to_string(id) : model->vocab()[size_t(id)];
                };
                std::printf(
                    "step %2d: in %-10s -> next %-10s p %.3f | logits mean %+.3f [%+.2f, "
                    "%+.2f]",
                    t, word(in).c_str(), word(token).c_str(), std::exp(logp[size_t(token)]), l.mean,
                    l.min, l.max);
            } else {
                for (float &v : x) v = normal(rng);
                session.step(x.data());
                std::printf("step %2d:", t);
            }
            const Summary h = summarize(session.hidden(s.layers - 1), s.hidden_size);
            std::printf(" | h mean |h| %.4f [%+.3f, %+.3f]\n", h.mean_abs, h.min, h.max);
            if (!std::isfinite(h.mean_abs)) {
                std::fprintf(stderr, "rnn_app: h is not finite at step %d\n", t);
                return 1;
            }
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "rnn_app: %s\n", e.what());
        return 1;
    }
}
