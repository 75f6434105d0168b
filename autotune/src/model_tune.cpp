#include "amq/autotune/model_tune.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <numeric>
#include <stdexcept>

#include "amq/autotune/knobs.h"

namespace amq::tune {
namespace {

// A rough time of one call in microseconds, from its work: enough to weigh the
// problems of a model against each other (measured magnitudes on a Zen 5 VM,
// one thread: bgemv 4096x1024 W2A2 ~11 us, bgemm ~0.75 of that per item,
// f32_gemv 4096x1024 ~0.8 ms, lstm_cell H = 1024 ~2 us, quantize_act 1024 a2t2
// ~5 us).
double call_us(const Problem &p) {
    const double w = p.work();
    if (p.pipeline == "bgemv") return 0.2 + w / 1.5e6;
    if (p.pipeline == "bgemm") return 0.2 + 0.75 * w / 1.5e6;
    if (p.pipeline == "f32_gemv") return 0.2 + w / 5e3;
    if (p.pipeline == "quantize_act") return 0.5 + w / 1.2e3;
    if (p.pipeline == "log_softmax") return 0.2 + w / 3e3;
    return 0.1 + w * (p.pipeline == "lstm_cell" ? 4 : 3) / 2e3;  // cells: G H B values
}

int order_of(const std::string &pipeline) {
    static const std::vector<std::string> order = {"bgemv",    "bgemm",        "f32_gemv",
                                                   "lstm_cell", "gru_cell",    "quantize_act",
                                                   "log_softmax"};
    return int(std::find(order.begin(), order.end(), pipeline) - order.begin());
}

}  // namespace

std::vector<ModelProblem> model_problems(const ModelFile &model, size_t batch, int threads,
                                         const std::string &layout, int tile) {
    if (batch < 1) throw std::invalid_argument("model problems: batch 0 (expected >= 1)");
    if (threads < 1) throw std::invalid_argument("model problems: threads 0 (expected >= 1)");
    const RnnShape &s = model.shape;
    const size_t H = s.hidden_size, steps = kModelRunChunk;
    const bool quantized = model.quantized();
    const std::string sl = arch_name(s.arch);
    std::vector<ModelProblem> out;
    auto add = [&](Problem p, const std::string &use, double calls) {
        p.threads = threads;
        for (auto &m : out)
            if (m.problem == p) {
                m.uses.push_back(use);
                m.calls += calls;
                return;
            }
        ModelProblem m;
        m.problem = p;
        m.uses = {use};
        m.calls = calls;
        m.call_us = call_us(p);
        out.push_back(m);
    };
    // One matrix product: y [items][rows] = W x, called `calls` times with
    // `items` vectors each.
    auto product = [&](const std::string &name, size_t rows, size_t cols, size_t items,
                       double calls, const std::string &use) {
        Problem p;
        auto q = model.quant.find(name);
        if (q == model.quant.end()) {
            p.pipeline = "f32_gemv";  // once per item
            p.rows = rows;
            p.cols = cols;
            add(p, use, calls * double(items));
            return;
        }
        p.rows = rows;
        p.cols = cols;
        p.k_w = q->second.k;
        p.k_a = model.bits_of(name).k_a;  // bits per matrix (matrix_bits)
        if (items == 1) {
            p.pipeline = "bgemv";
        } else {
            p.pipeline = "bgemm";
            p.batch = items;
            p.layout = layout;
            p.tile = tile;
        }
        add(p, use, calls);
    };
    // The matrices of the network (amq/model.h's one list), as the runner uses them.
    for (const MatrixInfo &mi : weight_matrices(s, false)) {
        const std::string L =
            "layer " + std::to_string(mi.layer) + (mi.direction ? " reverse" : "");
        switch (mi.role) {
            case MatrixRole::input:
                if (s.lm() || !quantized)
                    product(mi.name, mi.rows, mi.cols, batch, double(steps), L + " input product");
                else
                    product(mi.name, mi.rows, mi.cols, steps * batch, 1.0,
                            L + " input product (run, " + std::to_string(steps) + "-step chunk)");
                break;
            case MatrixRole::recurrent: {
                product(mi.name, mi.rows, mi.cols, batch, double(steps), L + " recurrent product");
                Problem c;
                c.pipeline = sl + "_cell";
                c.rows = H;
                c.batch = batch;
                add(c, L + " cell", double(steps));
                break;
            }
            default:  // the projection of an LSTM with proj_size
                product(mi.name, mi.rows, mi.cols, batch, double(steps), L + " projection");
        }
    }
    if (s.lm())
        product(s.tied ? "embedding.weight" : "decoder.weight", s.vocab_size, s.h_size(), batch,
                double(steps), "decoder");
    if (s.lm()) {  // the log-softmax over the vocabulary, once per item (amq eval, generation)
        Problem ls;
        ls.pipeline = "log_softmax";
        ls.rows = 1;
        ls.cols = s.vocab_size;
        add(ls, "log-softmax", double(steps * batch));
    }
    if (quantized) {
        // Once per distinct activation quantizer of the model's matrices (bits
        // per matrix; one with uniform bits). Ternary activations
        // (quantize_act_ternary) are not a tunable pipeline.
        std::vector<MatrixBits> kinds;
        for (const QuantMatrixInfo &m : quantized_matrices(model))
            if (m.bits.act_method != "ternary" &&
                std::find(kinds.begin(), kinds.end(), m.bits) == kinds.end() &&
                !(m.name == "embedding.weight" && !s.tied))  // a lookup: no product
                kinds.push_back(m.bits);
        for (const MatrixBits &b : kinds) {
            Problem q;
            q.pipeline = "quantize_act";
            q.rows = 1;
            q.k_a = b.k_a;
            q.iters = b.act_method == "greedy" ? 0 : model.act_iters;
            const double per_step = double(steps * batch), D = s.directions(),
                         LD = D * double(s.layers);
            q.cols = s.input_size;  // each direction quantizes its chunk's inputs
            add(q, "layer 0 input", per_step * D);
            q.cols = s.h_size();
            add(q, "hidden state", per_step * LD);
            if (s.bidirectional && s.layers > 1) {  // the outputs of both directions, together
                q.cols = s.output_size();
                add(q, "layer input (both directions)", per_step * D * double(s.layers - 1));
            }
            if (s.proj_size) {
                q.cols = H;
                add(q, "projection input", per_step * LD);
            }
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const ModelProblem &a, const ModelProblem &b) {
        const int oa = order_of(a.problem.pipeline), ob = order_of(b.problem.pipeline);
        if (oa != ob) return oa < ob;
        return a.problem.work() > b.problem.work();
    });
    return out;
}

std::pair<std::string, int> bgemm_weight_layout(const std::string &schedules_path,
                                                const std::string &isa) {
    Knobs k = hand_defaults("bgemv");
    if (!schedules_path.empty())
        if (std::ifstream in(schedules_path); in) {
            try {
                const nlohmann::json doc = nlohmann::json::parse(in);
                const auto &b = doc.at("pipelines").at("bgemv");
                if (b.contains("layout") && b.contains("tile")) k = b;
                const nlohmann::json::json_pointer lower("/isa/" + isa + "/pipelines/bgemv");
                if (!isa.empty() && doc.contains(lower) && doc.at(lower).contains("layout") &&
                    doc.at(lower).contains("tile"))
                    k = doc.at(lower);
            } catch (const std::exception &) {
                // Not readable: the tuner refuses it with the reason when it writes.
            }
        }
    return {k.at("layout").get<std::string>(), k.at("tile").get<int>()};
}

std::vector<double> split_budget(const std::vector<ModelProblem> &problems, double budget_seconds) {
    std::vector<double> out(problems.size(), 0.0);
    if (problems.empty()) return out;
    double total = 0;
    for (const auto &p : problems) total += p.expected_us();
    const double n = double(problems.size());
    for (size_t i = 0; i < problems.size(); ++i) {
        const double share =
            0.5 / n + (total > 0 ? 0.5 * problems[i].expected_us() / total : 0.5 / n);
        out[i] = budget_seconds * share;
    }
    return out;
}

std::vector<TuneReport> tune_model(std::vector<ModelProblem> problems, const TuneOptions &base,
                                   double budget_seconds, int max_trials_each,
                                   const ModelTuneCallbacks &cb) {
    const std::vector<double> plan = split_budget(problems, 1.0);  // shares
    std::vector<TuneReport> reports;
    double left = budget_seconds;
    for (size_t i = 0; i < problems.size(); ++i) {
        ModelProblem &mp = problems[i];
        if (mp.problem.pipeline == "bgemm") {
            const auto [layout, tile] = bgemm_weight_layout(base.schedules_path, base.isa);
            mp.problem.layout = layout;
            mp.problem.tile = tile;
        }
        double rest = 0;
        for (size_t j = i; j < problems.size(); ++j) rest += plan[j];
        const double budget = std::max(0.0, rest > 0 ? left * plan[i] / rest : left);
        if (cb.on_problem) cb.on_problem(i, problems.size(), mp, budget);
        TuneOptions o = base;
        o.problem = mp.problem;
        o.budget_seconds = std::max(budget, 1e-3);
        o.max_trials = max_trials_each;
        const TuneReport r = tune(o, cb);
        left = std::max(0.0, left - r.search_seconds);
        if (cb.on_done) cb.on_done(i, problems.size(), r);
        reports.push_back(r);
    }
    return reports;
}

}  // namespace amq::tune
