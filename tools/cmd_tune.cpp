// amq tune: search a pipeline's schedule knobs for this CPU (autotune/), with a
// progress line on stderr, the records appended as it goes, the winner written
// to the tuned schedules file, and a summary (or one JSON object) at the end.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/pipeline.h"
#include "amq/autotune/schedules_file.h"
#include "amq/autotune/tuner.h"
#include "commands.h"

namespace amq::tools {
namespace {

struct TuneArgs {
    std::string pipeline, shape, bits, records, schedules;
    double budget = 120, timeout = 60;
    int trials = 0, threads = 1;
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
    std::cout << r.problem.str() << " on " << r.cpu.name << " (" << r.cpu.id << ")\n"
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

void run_tune(const TuneArgs &a) {
    tune::Problem problem;
    problem.pipeline = a.pipeline;
    const auto known = tune::tunable_pipelines();
    if (std::find(known.begin(), known.end(), a.pipeline) == known.end()) {
        std::string list;
        for (const auto &k : known) list += (list.empty() ? "" : ", ") + k;
        throw UsageError("--pipeline '" + a.pipeline +
                         "': not a tunable pipeline (tunable: " + list + ")");
    }
    const spec::Shape shape = parse_shape("--shape", a.shape);
    const spec::Bits bits = parse_bits("--bits", a.bits);
    problem.rows = shape.rows;
    problem.cols = shape.cols;
    problem.k_w = bits.w;
    problem.k_a = bits.a;
    check_range("--threads", a.threads, 1, 1024);
    check_range("--trials", a.trials, 0, 1000000);
    if (!(a.budget > 0 && a.budget <= 86400))
        throw UsageError("--budget " + num_str(a.budget) + ": expected seconds in (0, 86400]");
    if (!(a.timeout >= 1 && a.timeout <= 3600))
        throw UsageError("--timeout " + num_str(a.timeout) + ": expected seconds in [1, 3600]");
    problem.threads = a.threads;

    const tune::CpuIdentity cpu = tune::detect_cpu();
    tune::TuneOptions o;
    o.problem = problem;
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
    tune::TuneCallbacks cb;
    cb.on_trial = [progress, &a](const tune::TrialEvent &e) { progress->trial(e, a.trials); };
    cb.status = [progress](const std::string &s) { progress->message(s); };
    cb.warn = [progress](const std::string &s) { progress->message("warning: " + s); };
    progress->message("tuning " + problem.str() + " for " + cpu.id + ", budget " +
                      std::to_string(int(a.budget)) + " s");
    const tune::TuneReport report = tune::tune(o, cb);
    if (a.json)
        std::cout << report.to_json().dump(2) << std::endl;
    else
        print_summary(report);
}

}  // namespace

void add_tune_command(CLI::App &app) {
    auto *cmd = app.add_subcommand(
        "tune",
        "Search a pipeline's schedule knobs for this CPU: every candidate is compiled, checked "
        "against the scalar reference and timed against the hand defaults in a child process; "
        "results go to the records, the winner to schedules/<cpu-id>.json");
    auto a = std::make_shared<TuneArgs>();
    cmd->add_option("--pipeline", a->pipeline, "Pipeline to tune (bgemv)")->required();
    cmd->add_option("--shape", a->shape, "ROWSxCOLS, e.g. 4096x1024")->required();
    cmd->add_option("--bits", a->bits, "Weight x activation bits, e.g. 2x2 (1..4 each)")
        ->required();
    cmd->add_option("--budget", a->budget, "Seconds for the search")->capture_default_str();
    cmd->add_option("--trials", a->trials, "Stop the search after this many trials (0: no limit)")
        ->capture_default_str();
    cmd->add_option("--threads", a->threads, "Threads the kernel runs on")->capture_default_str();
    cmd->add_option("--records", a->records,
                    "Records file (JSON lines, appended; default "
                    "schedules/records/<cpu-id>.jsonl in the source tree)");
    cmd->add_option("--schedules", a->schedules,
                    "Tuned schedules file to update (default schedules/<cpu-id>.json in the "
                    "source tree)");
    cmd->add_option("--seed", a->seed, "Seed of the search")->capture_default_str();
    cmd->add_option("--timeout", a->timeout, "Seconds one candidate may take")
        ->capture_default_str();
    cmd->add_flag("--compare-autoschedulers", a->compare,
                  "Also run Halide's Mullapudi2016, Adams2019 and Li2018 and time their best "
                  "runs side by side with the result");
    cmd->add_flag("--json", a->json, "Print one JSON object at the end");
    cmd->callback([a] { run_tune(*a); });
}

}  // namespace amq::tools
