// amq tune: search a pipeline's schedule knobs for this CPU (autotune/), with a
// progress line on stderr, the records appended as it goes, the winner written
// to the tuned schedules file, and a summary (or one JSON object) at the end.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/jit_kernel.h"
#include "amq/autotune/model_tune.h"
#include "amq/autotune/pipeline.h"
#include "amq/autotune/schedules_file.h"
#include "amq/autotune/tuner.h"
#include "commands.h"

namespace amq::tools {
namespace {

struct TuneArgs {
    std::string pipeline, shape, bits, records, schedules, model, isa;
    // --steps: fused or separate step kernels (run_tune_steps); its grid.
    bool steps = false;
    std::string cells, hidden;
    size_t input = 0;
    int rounds = StepTuneArgs().rounds, repeats = StepTuneArgs().repeats;
    double budget = 120, timeout = 60;
    int trials = 0, threads = 1, iters = -1;
    size_t batch = 1;
    unsigned long long seed = 1;
    bool compare = false, json = false;
};

// The progress line: trials, failures, best so far and time left. On a
// terminal it redraws one line at most 5 times a second; otherwise (logs, CI)
// it prints a line at every tenth of the budget.
class TuneProgress {
public:
    TuneProgress() : tty_(isatty(STDERR_FILENO)) {}

    void trial(const tune::TrialEvent &e, int max_trials) {
        const auto now = std::chrono::steady_clock::now();
        double done = e.budget_seconds > 0 ? e.elapsed_seconds / e.budget_seconds : 0;
        if (max_trials > 0) done = std::max(done, double(e.trials) / max_trials);
        done = std::min(done, 1.0);
        if (tty_) {
            if (now - last_ < std::chrono::milliseconds(200)) return;
        } else {
            const int decile = int(done * 10);
            if (decile == last_decile_) return;
            last_decile_ = decile;
        }
        last_ = now;
        const int width = 24, filled = int(done * width + 0.5);
        char best[96] = "none yet";
        if (e.best_ratio)
            std::snprintf(best, sizeof best, "%.2f us (%.2fx the defaults' time)", e.best_us,
                          *e.best_ratio);
        std::fprintf(stderr, "%stune [%s%s] %d trials, %d failed, best %s, %.0f s left%s",
                     tty_ ? "\r\033[K" : "", std::string(size_t(filled), '#').c_str(),
                     std::string(size_t(width - filled), ' ').c_str(), e.trials, e.failures, best,
                     std::max(0.0, e.budget_seconds - e.elapsed_seconds), tty_ ? "" : "\n");
        std::fflush(stderr);
        open_line_ = tty_;
    }

    // A new search (tune --model): the progress line starts over.
    void restart() { last_decile_ = -1; }

    void message(const std::string &text) {
        std::fprintf(stderr, "%samq tune: %s\n", open_line_ ? "\r\033[K" : "", text.c_str());
        open_line_ = false;
    }

private:
    bool tty_;
    bool open_line_ = false;
    int last_decile_ = -1;
    std::chrono::steady_clock::time_point last_{};
};

std::string num_str(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string us_str(double us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f us", us);
    return buf;
}

void print_summary(const tune::TuneReport &r) {
    std::cout << r.problem.str() << " on " << r.cpu.name << " (" << r.cpu.id << "), " << r.isa
              << " variant\n"
              << "tuned:          " << us_str(r.tuned_us) << "  " << tune::knobs_str(r.tuned_knobs)
              << (r.kept_default ? "  (the search's winner was not faster: defaults kept)" : "")
              << "\n"
              << "hand defaults:  " << us_str(r.default_us) << "  "
              << tune::knobs_str(r.default_knobs) << "\n";
    for (const auto &a : r.autoschedulers) {
        std::string name = a.name + ":";
        name.resize(16, ' ');
        std::cout << name << (a.us ? us_str(*a.us) + "  " + a.best.str() : "failed: " + a.reason)
                  << "\n";
    }
    char speed[128];
    std::snprintf(speed, sizeof speed, "speed-up: %.2fx vs the hand defaults",
                  r.default_us / r.tuned_us);
    std::cout << speed;
    if (const auto *b = r.best_autoscheduler())
        std::printf(", %.2fx vs the best autoscheduler (%s)", *b->us / r.tuned_us, b->name.c_str());
    std::cout << std::endl;
    std::cout << "search: " << (r.exhaustive ? "exhaustive" : "sampled") << ", " << r.trials
              << " trials (" << r.failures << " failed, " << r.resumed << " resumed from records, "
              << r.pruned << " candidates pruned), "
              << (r.search_complete ? "complete" : "stopped at the " + r.search_end) << " after "
              << int(r.search_seconds + 0.5) << " s; total " << int(r.total_seconds + 0.5)
              << " s\n";
    if (!r.schedules_path.empty()) std::cout << "schedules: " << r.schedules_path << "\n";
    if (!r.records_path.empty()) std::cout << "records:   " << r.records_path << "\n";
}

// "4096x1024x64" -> {4096, 1024, 64}: `count` positive integers joined by 'x';
// UsageError naming the option and the form `expected` otherwise.
std::vector<size_t> parse_dims(const std::string &option, const std::string &text, size_t count,
                               const std::string &expected) {
    std::vector<size_t> out;
    size_t start = 0;
    for (;;) {
        const size_t x = text.find_first_of("xX", start);
        const std::string part = text.substr(start, x == std::string::npos ? x : x - start);
        if (part.empty() || part.size() > 10 ||
            part.find_first_not_of("0123456789") != std::string::npos)
            break;
        const unsigned long long v = std::strtoull(part.c_str(), nullptr, 10);
        if (v < 1 || v > 2147483647ull) break;
        out.push_back(size_t(v));
        if (x == std::string::npos) {
            if (out.size() == count) return out;
            break;
        }
        start = x + 1;
    }
    throw UsageError(option + " '" + text + "': expected " + expected +
                     ", each an integer in 1..2147483647");
}

std::string pipeline_list() {
    std::string list;
    for (const auto &k : tune::tunable_pipelines()) list += (list.empty() ? "" : ", ") + k;
    return list;
}

// The problem of --pipeline, --shape, --bits and --iters.
tune::Problem problem_from_args(const TuneArgs &a, const std::string &schedules_path,
                                const std::string &isa) {
    tune::Problem problem;
    problem.pipeline = a.pipeline;
    const auto known = tune::tunable_pipelines();
    if (std::find(known.begin(), known.end(), a.pipeline) == known.end())
        throw UsageError("--pipeline '" + a.pipeline +
                         "': not a tunable pipeline (tunable: " + pipeline_list() + ")");
    if (a.shape.empty()) throw UsageError("--shape is required with --pipeline");
    const std::string &p = a.pipeline;
    const bool binary = p == "bgemv" || p == "bgemm", cell = p == "lstm_cell" || p == "gru_cell";
    if (p == "bgemv" || p == "f32_gemv") {
        const spec::Shape shape = parse_shape("--shape", a.shape);
        problem.rows = shape.rows;
        problem.cols = shape.cols;
    } else if (p == "bgemm") {
        const auto d = parse_dims("--shape", a.shape, 3, "ROWSxCOLSxBATCH, e.g. 4096x1024x64");
        problem.rows = d[0];
        problem.cols = d[1];
        problem.batch = d[2];
        if (problem.batch < 2)
            throw UsageError("--shape '" + a.shape +
                             "': a batch of 1 runs bgemv (tune --pipeline bgemv)");
        const auto [layout, tile] = tune::bgemm_weight_layout(schedules_path, isa);
        problem.layout = layout;
        problem.tile = tile;
    } else if (cell) {
        const auto d = parse_dims("--shape", a.shape, 2, "HIDDENxBATCH, e.g. 1024x1");
        problem.rows = d[0];
        problem.batch = d[1];
    } else if (p == "quantize_act") {
        problem.rows = 1;
        problem.cols = parse_dims("--shape", a.shape, 1, "the vector length, e.g. 1024")[0];
    } else if (p == "log_softmax") {
        problem.rows = 1;
        problem.cols = parse_dims("--shape", a.shape, 1, "the vocabulary size, e.g. 6022")[0];
    }
    if (binary) {
        if (a.bits.empty()) throw UsageError("--bits is required for " + p);
        const spec::Bits bits = parse_bits("--bits", a.bits);
        problem.k_w = bits.w;
        problem.k_a = bits.a;
    } else if (p == "quantize_act") {
        if (a.bits.empty()) throw UsageError("--bits is required for quantize_act (e.g. 2)");
        const auto d = parse_dims("--bits", a.bits, 1, "the activation bits 1..4, e.g. 2");
        check_range("--bits", (long long)d[0], 1, 4);
        problem.k_a = int(d[0]);
    } else if (!a.bits.empty()) {
        throw UsageError("--bits '" + a.bits + "': " + p + " works in float, it has no bits");
    }
    if (a.iters >= 0 && p != "quantize_act")
        throw UsageError("--iters: only quantize_act has alternating cycles");
    if (p == "quantize_act") {
        problem.iters = a.iters >= 0 ? a.iters : 2;
        check_range("--iters", problem.iters, 0, 3);
    }
    return problem;
}

#ifndef AMQ_HAVE_BENCH
void run_tune_steps(const StepTuneArgs &, const ModelFile *) {
    throw UsageError("--steps times RNN steps with the benchmark code, which this amq was built "
                     "without (configure with -DAMQ_BUILD_BENCH=ON)");
}
#endif

// --steps: the step problems of the model or of the grid, nothing else.
void run_tune_steps_only(const TuneArgs &a) {
    if (!a.pipeline.empty() || !a.shape.empty() || a.iters >= 0 || !a.isa.empty() || a.compare ||
        a.trials || !a.records.empty())
        throw UsageError("--steps times step kernels as built; --pipeline, --shape, --iters, "
                         "--isa, --trials, --records and --compare-autoschedulers are for the "
                         "knob searches");
    StepTuneArgs s;
    s.cells = a.cells;
    s.hidden = a.hidden;
    s.bits = a.bits;
    s.input = a.input;
    s.batch = a.batch;
    s.rounds = a.rounds;
    s.repeats = a.repeats;
    s.threads = a.threads;
    s.schedules = a.schedules;
    s.json = a.json;
    if (a.model.empty()) {
        run_tune_steps(s, nullptr);
        return;
    }
    const ModelFile model = load_model(a.model);
    run_tune_steps(s, &model);
}

void run_tune(const TuneArgs &a) {
    if (a.steps) {
        run_tune_steps_only(a);
        return;
    }
    if (!a.cells.empty() || !a.hidden.empty() || a.input || a.rounds != StepTuneArgs().rounds ||
        a.repeats != StepTuneArgs().repeats)
        throw UsageError("--cell, --hidden, --input, --rounds and --repeats are for --steps");
    const bool by_model = !a.model.empty();
    if (by_model == !a.pipeline.empty())
        throw UsageError(by_model ? "give either --model or --pipeline, not both"
                                  : "give --pipeline (with --shape and --bits) or --model");
    if (by_model && (!a.shape.empty() || !a.bits.empty() || a.iters >= 0))
        throw UsageError(
            "--shape, --bits and --iters come from the model with --model: leave them out");
    if (!by_model && a.batch != 1)
        throw UsageError("--batch is for --model (a pipeline's batch is part of its --shape)");
    check_range("--threads", a.threads, 1, 1024);
    check_range("--trials", a.trials, 0, 1000000);
    check_range("--batch", (long long)a.batch, 1, 4096);
    if (!(a.budget > 0 && a.budget <= 86400))
        throw UsageError("--budget " + num_str(a.budget) + ": expected seconds in (0, 86400]");
    if (!(a.timeout >= 1 && a.timeout <= 3600))
        throw UsageError("--timeout " + num_str(a.timeout) + ": expected seconds in [1, 3600]");

    const Halide::Target host = Halide::get_host_target();
    if (!a.isa.empty()) {
        try {
            tune::isa_target(host, a.isa);
        } catch (const std::invalid_argument &e) {
            throw UsageError(std::string("--isa: ") + e.what());
        }
    }
    const tune::CpuIdentity cpu = tune::detect_cpu();
    tune::TuneOptions o;
    o.isa = a.isa.empty() ? tune::best_isa(host) : a.isa;
    o.budget_seconds = a.budget;
    o.max_trials = a.trials;
    o.search.seed = a.seed;
    o.compare_autoschedulers = a.compare;
    o.candidate_timeout_seconds = a.timeout;
    o.records_path = !a.records.empty()
                         ? a.records
                         : std::string(AMQ_SCHEDULES_DIR) + "/records/" + cpu.id + ".jsonl";
    o.schedules_path = !a.schedules.empty()
                           ? a.schedules
                           : std::string(AMQ_SCHEDULES_DIR) + "/" + tune::schedules_file_name(cpu);

    auto progress = std::make_shared<TuneProgress>();
    tune::ModelTuneCallbacks cb;
    cb.on_trial = [progress, &a](const tune::TrialEvent &e) { progress->trial(e, a.trials); };
    cb.status = [progress](const std::string &s) { progress->message(s); };
    cb.warn = [progress](const std::string &s) { progress->message("warning: " + s); };

    if (!by_model) {
        o.problem = problem_from_args(a, o.schedules_path, o.isa);
        o.problem.threads = a.threads;
        progress->message("tuning " + o.problem.str() + " for " + cpu.id + " (" + o.isa +
                          " variant), budget " +
                          std::to_string(int(a.budget)) + " s");
        const tune::TuneReport report = tune::tune(o, cb);
        if (a.json)
            std::cout << report.to_json().dump(2) << std::endl;
        else
            print_summary(report);
        return;
    }

    const ModelFile model = load_model(a.model);
    const auto [layout, tile] = tune::bgemm_weight_layout(o.schedules_path, o.isa);
    const std::vector<tune::ModelProblem> problems =
        tune::model_problems(model, a.batch, a.threads, layout, tile);
    progress->message("tuning " + std::to_string(problems.size()) + " problems of " + a.model +
                      " (batch " + std::to_string(a.batch) + ") for " + cpu.id + ", budget " +
                      num_str(a.budget) + " s");
    std::vector<double> budgets(problems.size());
    cb.on_problem = [progress, &budgets](size_t i, size_t n, const tune::ModelProblem &mp,
                                         double budget) {
        budgets[i] = budget;
        std::string uses;
        for (const auto &u : mp.uses) uses += (uses.empty() ? "" : "; ") + u;
        char b[32];
        std::snprintf(b, sizeof b, budget < 10 ? "%.1f s" : "%.0f s", budget);
        progress->restart();
        progress->message("[" + std::to_string(i + 1) + "/" + std::to_string(n) + "] " +
                          mp.problem.str() + " (" + uses + "), budget " + b);
    };
    cb.on_done = [progress](size_t i, size_t n, const tune::TuneReport &r) {
        char line[160];
        std::snprintf(line, sizeof line,
                      "%.2f us vs %.2f us for the hand defaults (%.2fx), %d trials", r.tuned_us,
                      r.default_us, r.default_us / r.tuned_us, r.trials);
        progress->message("[" + std::to_string(i + 1) + "/" + std::to_string(n) +
                          "] done: " + line);
    };
    const std::vector<tune::TuneReport> reports =
        tune::tune_model(problems, o, a.budget, a.trials, cb);
    if (a.json) {
        nlohmann::ordered_json j;
        j["model"] = a.model;
        j["batch"] = a.batch;
        j["threads"] = a.threads;
        j["budget"] = a.budget;
        j["isa"] = o.isa;
        j["problems"] = nlohmann::ordered_json::array();
        for (size_t i = 0; i < reports.size(); ++i) {
            nlohmann::ordered_json p;
            p["uses"] = problems[i].uses;
            p["calls_per_64_steps"] = problems[i].calls;
            p["budget_seconds"] = std::round(budgets[i] * 1000) / 1000;
            const nlohmann::ordered_json report = reports[i].to_json();
            for (const auto &[k, v] : report.items()) p[k] = v;
            j["problems"].push_back(p);
        }
        j["records"] = o.records_path;
        j["schedules"] = o.schedules_path;
        std::cout << j.dump(2) << std::endl;
        return;
    }
    std::cout << a.model << ": " << reports.size() << " problems on " << cpu.name << " (" << cpu.id
              << ")\n";
    for (size_t i = 0; i < reports.size(); ++i) {
        const tune::TuneReport &r = reports[i];
        char line[256];
        std::snprintf(line, sizeof line, "%-44s %9.2f us  defaults %9.2f us  %.2fx  %3d trials  ",
                      r.problem.str().c_str(), r.tuned_us, r.default_us, r.default_us / r.tuned_us,
                      r.trials);
        std::cout << line << tune::knobs_str(r.tuned_knobs) << "\n";
    }
    std::cout << "schedules: " << o.schedules_path << "\nrecords:   " << o.records_path << "\n"
              << "Next: rebuild (cmake --build) for these knobs, then choose the fused or the "
                 "separate step kernels for the model's layers with the kernels so built (amq "
                 "tune --steps --model "
              << a.model << ") and rebuild again to link that choice.\n";
}

}  // namespace

void add_tune_command(CLI::App &app) {
    auto *cmd = app.add_subcommand(
        "tune",
        "Search a pipeline's schedule knobs for this CPU: every candidate is compiled, checked "
        "against the scalar reference and timed against the hand defaults in a child process; "
        "results go to the records, the winner to schedules/<cpu-id>.json");
    auto a = std::make_shared<TuneArgs>();
    std::string pipelines;
    for (const std::string &name : tune::tunable_pipelines())
        pipelines += (pipelines.empty() ? "" : ", ") + name;
    cmd->add_option("--pipeline", a->pipeline, "Pipeline to tune (" + pipelines + ")");
    cmd->add_option("--shape", a->shape,
                    "ROWSxCOLS (bgemv, f32_gemv), ROWSxCOLSxBATCH (bgemm), HIDDENxBATCH (cells), "
                    "LENGTH (quantize_act), VOCAB (log_softmax)");
    cmd->add_option("--bits", a->bits,
                    "Weight and activation bits, e.g. W2A2 or the alias 2x2 (bgemv, bgemm); activation bits "
                    "(quantize_act)");
    cmd->add_option("--iters", a->iters, "quantize_act: alternating cycles T, 0..3 (default 2)");
    cmd->add_option("--model", a->model,
                    "Tune every problem the runner calls for this model (.amq or float "
                    "safetensors) within --budget");
    cmd->add_option("--batch", a->batch, "With --model: sequences per step")->capture_default_str();
    cmd->add_option("--budget", a->budget,
                    "Seconds for the search (with --model: for all the searches)")
        ->capture_default_str();
    cmd->add_option("--trials", a->trials,
                    "Stop the search after this many trials (0: no limit; with --model: per "
                    "problem)")
        ->capture_default_str();
    cmd->add_option("--threads", a->threads, "Threads the kernel runs on")->capture_default_str();
    cmd->add_option("--records", a->records,
                    "Records file (JSON lines, appended; default "
                    "schedules/records/<cpu-id>.jsonl in the source tree)");
    cmd->add_option("--schedules", a->schedules,
                    "Tuned schedules file to update (default schedules/<cpu-id>.json in the "
                    "source tree)");
    std::string isas;
    for (const auto &v : tune::isa_variants()) isas += (isas.empty() ? "" : ", ") + v.name;
    cmd->add_option("--isa", a->isa,
                    "Kernel variant to tune (" + isas +
                        "; default: the best this CPU runs): the candidates are compiled for this "
                        "CPU's features capped to that variant; the result goes to the schedules "
                        "file's section of the variant");
    cmd->add_option("--seed", a->seed, "Seed of the search")->capture_default_str();
    cmd->add_option("--timeout", a->timeout, "Seconds one candidate may take")
        ->capture_default_str();
    cmd->add_flag("--compare-autoschedulers", a->compare,
                  "Also run Halide's Mullapudi2016, Adams2019 and Li2018 and time their best "
                  "runs side by side with the result");
    cmd->add_flag("--steps", a->steps,
                  "Time RNN steps on the fused step kernels and on the separate ones (this "
                  "build's), for --model's layers or the grid of --cell, --hidden, --bits "
                  "(default: every pair with a fused step) and --batch; writes both times to the "
                  "schedules file's \"steps\", from which the build links the faster (the "
                  "separate kernels only where more than 3% faster)");
    cmd->add_option("--cell", a->cells, "With --steps: lstm, gru or lstm,gru (default both)");
    cmd->add_option("--hidden", a->hidden,
                    "With --steps: hidden sizes, comma-separated (default 64,128,256,512,1024)");
    cmd->add_option("--input", a->input, "With --steps: input size (default: the hidden size)");
    cmd->add_option("--rounds", a->rounds, "With --steps: timing rounds (medians)")
        ->capture_default_str();
    cmd->add_option("--repeats", a->repeats,
                    "With --steps: times each problem on new weights and buffers this many "
                    "times (the median)")
        ->capture_default_str();
    cmd->add_flag("--json", a->json, "Print one JSON object at the end");
    cmd->callback([a] { run_tune(*a); });
}

}  // namespace amq::tools
