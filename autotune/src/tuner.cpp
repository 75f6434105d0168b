#include "amq/autotune/tuner.h"

#include <chrono>
#include <cmath>
#include <memory>

#include "Halide.h"
#include "amq/autotune/autoschedulers.h"
#include "amq/autotune/jit_kernel.h"
#include "amq/autotune/pipeline.h"
#include "amq/autotune/schedules_file.h"

namespace amq::tune {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

nlohmann::json us_or_null(const std::optional<double> &us) {
    return us ? nlohmann::json(round3(*us)) : nlohmann::json(nullptr);
}

// "compile_error: ..." for the reason an autoscheduler has no time.
std::string failure_reason(const Measurement &m) {
    return std::string(kind_name(m.kind)) + ": " + m.error;
}

class Run {
public:
    Run(const TuneOptions &o, const TuneCallbacks &cb)
        : o_(o), cb_(cb), records_(o.records_path), t0_(Clock::now()) {}

    TuneReport run() {
        TuneReport rep;
        const Halide::Target host = Halide::get_host_target();
        rep.isa = o_.isa.empty() ? best_isa(host) : o_.isa;
        const Halide::Target target = isa_target(host, rep.isa);
        rep.problem = o_.problem;
        rep.cpu = detect_cpu();
        rep.target = target.to_string();
        rep.halide_version = AMQ_HALIDE_VERSION;
        rep.records_path = o_.records_path;
        rep.schedules_path = o_.schedules_path;
        pipeline_ = make_pipeline(o_.problem, target);
        // A lower ISA variant is built into the same libraries as the top one and
        // runs on the weights packed for it: it keeps the top's runtime knobs.
        if (rep.isa != isa_variants().front().name) {
            const Knobs top = top_variant_knobs(o_.schedules_path, o_.problem.pipeline);
            Knobs held = Knobs::object();
            for (const std::string &k : runtime_knobs(o_.problem.pipeline))
                if (top.contains(k)) held[k] = top.at(k);
            pipeline_->hold(held);
        }
        proto_.cpu = rep.cpu;
        proto_.isa = rep.isa;
        proto_.halide_version = rep.halide_version;
        proto_.target = rep.target;
        proto_.problem = o_.problem;

        status("compiling the hand defaults");
        evaluator_ = std::make_unique<Evaluator>(*pipeline_,
                                                 EvalOptions{target, o_.candidate_timeout_seconds});
        rep.default_knobs = evaluator_->baseline_knobs();

        search_phase(rep);
        if (o_.compare_autoschedulers) autoscheduler_phase(rep);
        final_phase(rep);
        if (!o_.schedules_path.empty())
            update_schedules_file(
                o_.schedules_path, rep.cpu, rep.halide_version, rep.target,
                {o_.problem, rep.tuned_knobs, rep.tuned_us, rep.default_us, utc_now(), rep.common_us},
                o_.records_path.empty() ? std::vector<Record>{} : records_.load(cb_.warn), rep.isa);
        rep.total_seconds = seconds_since(t0_);
        return rep;
    }

private:
    void status(const std::string &s) const {
        if (cb_.status) cb_.status(s);
    }

    Record record(const Candidate &c, const std::string &source, int rung,
                  const Measurement &m) const {
        Record r = proto_;
        r.time = utc_now();
        r.candidate = c;
        r.candidate.fault = Fault::none;
        r.source = source;
        r.rung = rung;
        r.measurement = m;
        return r;
    }

    void keep(const Record &r) const {
        if (!o_.records_path.empty()) records_.append(r);
    }

    // Earlier results for the same CPU, Halide, target and problem.
    int resume(Search &search) const {
        if (o_.records_path.empty()) return 0;
        int n = 0;
        for (const Record &r : records_.load(cb_.warn)) {
            if (!r.same_setting(proto_) || r.source != "search" ||
                !r.candidate.autoscheduler.empty() ||
                !pipeline_->space().check(r.candidate.knobs).empty() ||
                !holds_runtime_knobs(o_.problem.pipeline, r.candidate.knobs, pipeline_->held()))
                continue;
            const Measurement &m = r.measurement;
            search.observe(r.candidate.knobs, r.rung,
                           m.ok() ? std::optional<double>(m.ratio()) : std::nullopt);
            ++n;
        }
        return n;
    }

    void search_phase(TuneReport &rep) {
        const auto start = Clock::now();
        Search search(
            pipeline_->space(), rep.default_knobs, [this](Knobs &k) { return pipeline_->canonical(k); },
            o_.search);
        rep.resumed = resume(search);
        rep.exhaustive = search.exhaustive();
        std::vector<double> baseline_us;
        status(std::string(search.exhaustive()
                               ? "exhaustive search over " + std::to_string(search.valid() + 1) +
                                     " valid candidates"
                               : "sampled search") +
               (rep.resumed ? ", " + std::to_string(rep.resumed) + " results resumed" : ""));
        for (;;) {
            if (seconds_since(start) >= o_.budget_seconds) {
                rep.search_end = "budget";
                break;
            }
            if (o_.max_trials > 0 && rep.trials >= o_.max_trials) {
                rep.search_end = "trial limit";
                break;
            }
            std::optional<Proposal> p = search.next();
            if (!p) {
                rep.search_complete = true;
                rep.search_end = "complete";
                break;
            }
            Candidate c;
            c.knobs = p->knobs;
            if (auto f = o_.faults.find(knobs_key(c.knobs)); f != o_.faults.end())
                c.fault = f->second;
            const Measurement m =
                evaluator_->evaluate(c, p->rung == 0 ? o_.screen_timing : o_.full_timing);
            const Record r = record(c, "search", p->rung, m);
            keep(r);
            search.observe(c.knobs, p->rung,
                           m.ok() ? std::optional<double>(m.ratio()) : std::nullopt);
            ++rep.trials;
            if (!m.ok()) {
                ++rep.failures;
                ++rep.failure_kinds[kind_name(m.kind)];
            }
            if (m.baseline.median_us > 0) baseline_us.push_back(m.baseline.median_us);
            if (cb_.on_trial) {
                TrialEvent ev{r, rep.trials,           rep.failures,     std::nullopt,
                              0, seconds_since(start), o_.budget_seconds};
                if (auto b = search.best()) {
                    ev.best_ratio = b->second;
                    ev.best_us = b->second * (baseline_us.empty() ? 0 : baseline_us.back());
                }
                cb_.on_trial(ev);
            }
        }
        rep.pruned = search.pruned();
        rep.noise = timing::spread(baseline_us);
        rep.search_seconds = seconds_since(start);
        auto best = search.best();
        rep.tuned_knobs = best ? best->first : rep.default_knobs;
    }

    void autoscheduler_phase(TuneReport &rep) {
        rep.autoschedulers_compared = true;
        for (const std::string &name : autoscheduler_names()) {
            AutoschedulerResult res;
            res.name = name;
            const std::vector<Candidate> runs = autoscheduler_candidates(*pipeline_, name, rep.cpu);
            for (size_t i = 0; i < runs.size(); ++i) {
                status("autoscheduler " + name + " run " + std::to_string(i + 1) + "/" +
                       std::to_string(runs.size()) + ": " + knobs_str(runs[i].knobs));
                const Measurement m = evaluator_->evaluate(runs[i], o_.screen_timing);
                keep(record(runs[i], "autoscheduler", 0, m));
                ++res.runs;
                if (!m.ok()) {
                    ++res.failed_runs;
                    if (res.reason.empty()) res.reason = failure_reason(m);
                    continue;
                }
                if (!res.ratio || m.ratio() < *res.ratio) {
                    res.ratio = m.ratio();
                    res.best = runs[i];
                }
            }
            if (res.ratio)
                res.reason.clear();  // `us` comes from the closing comparison
            else
                res.reason =
                    "all " + std::to_string(res.runs) + " runs failed; first: " + res.reason;
            rep.autoschedulers.push_back(res);
        }
    }

    void final_phase(TuneReport &rep) {
        status("closing comparison: tuned vs hand defaults" +
               std::string(rep.autoschedulers_compared ? " vs autoschedulers" : ""));
        std::vector<Candidate> cands;
        Candidate tuned;
        tuned.knobs = rep.tuned_knobs;
        cands.push_back(tuned);
        std::vector<AutoschedulerResult *> timed;
        for (auto &a : rep.autoschedulers)
            if (a.ratio) {
                cands.push_back(a.best);
                timed.push_back(&a);
            }
        // The build's common knobs, timed in the same rounds: a per-problem
        // variant is built only when the winner beats them there.
        const bool top = rep.isa == isa_variants().front().name;
        std::optional<size_t> common_at;
        if (top && !o_.schedules_path.empty()) {
            rep.common_knobs = top_variant_knobs(o_.schedules_path, o_.problem.pipeline);
            if (!pipeline_->canonical(rep.common_knobs).empty() ||
                !pipeline_->space().check(rep.common_knobs).empty())
                rep.common_knobs = Knobs();  // not a candidate for this problem
            else if (rep.common_knobs != rep.default_knobs && rep.common_knobs != rep.tuned_knobs) {
                Candidate common;
                common.knobs = rep.common_knobs;
                common_at = cands.size();
                cands.push_back(common);
            }
        }
        const std::vector<Measurement> ms = evaluator_->evaluate_together(cands, o_.final_timing);
        for (size_t i = 0; i < cands.size(); ++i) keep(record(cands[i], "final", 0, ms[i]));
        const Measurement &t = ms[0];
        if (t.baseline.median_us <= 0)
            throw std::runtime_error("the closing comparison failed: " + t.error);
        rep.default_us = t.baseline.median_us;
        if (t.ok() && rep.tuned_knobs == rep.default_knobs) {
            // The same kernel: a difference would be noise.
            rep.tuned_us = rep.default_us;
        } else if (!t.ok() || t.kernel.median_us > rep.default_us) {
            if (!t.ok() && cb_.warn)
                cb_.warn("the tuned knobs failed in the closing comparison (" + failure_reason(t) +
                         "); keeping the hand defaults");
            rep.kept_default = rep.tuned_knobs != rep.default_knobs || !t.ok();
            rep.tuned_knobs = rep.default_knobs;
            rep.tuned_us = rep.default_us;
        } else {
            rep.tuned_us = t.kernel.median_us;
        }
        if (common_at && ms[*common_at].ok()) {
            rep.common_us = ms[*common_at].kernel.median_us;
            // The build's knobs won the closing comparison: they are the tuned knobs.
            if (rep.common_us < rep.tuned_us) {  // (tuned_us <= default_us already)
                rep.tuned_knobs = rep.common_knobs;
                rep.tuned_us = rep.common_us;
            }
        } else if (rep.common_knobs == rep.default_knobs)
            rep.common_us = rep.default_us;
        else if (rep.common_knobs == rep.tuned_knobs)
            rep.common_us = rep.tuned_us;
        for (size_t i = 0; i < timed.size(); ++i) {
            const Measurement &m = ms[i + 1];
            if (m.ok()) {
                timed[i]->us = m.kernel.median_us;
            } else {
                timed[i]->us.reset();
                timed[i]->reason =
                    "its best run failed in the closing comparison: " + failure_reason(m);
            }
        }
    }

    const TuneOptions &o_;
    const TuneCallbacks &cb_;
    RecordFile records_;
    Clock::time_point t0_;
    Record proto_;
    std::unique_ptr<TunablePipeline> pipeline_;
    std::unique_ptr<Evaluator> evaluator_;
};

}  // namespace

const AutoschedulerResult *TuneReport::best_autoscheduler() const {
    const AutoschedulerResult *best = nullptr;
    for (const auto &a : autoschedulers)
        if (a.us && (!best || *a.us < *best->us)) best = &a;
    return best;
}

nlohmann::ordered_json TuneReport::to_json() const {
    nlohmann::ordered_json j;
    j["pipeline"] = problem.pipeline;
    j["shape"] = problem.shape_str();
    j["bits"] = problem.bits_str();
    j["threads"] = problem.threads;
    j["isa"] = isa;
    const auto fields = problem_fields(problem);
    for (const char *key : {"rows", "cols", "batch", "k_w", "k_a", "iters", "weight_layout"})
        j[key] = fields.at(key);
    j["tuned_us"] = round3(tuned_us);
    j["default_us"] = round3(default_us);
    j["common_knobs"] = common_knobs.is_null() ? nlohmann::json(nullptr) : nlohmann::json(common_knobs);
    j["common_us"] = common_us > 0 ? nlohmann::json(round3(common_us)) : nlohmann::json(nullptr);
    nlohmann::ordered_json as = nlohmann::ordered_json::object();
    for (const std::string &name : autoscheduler_names()) {
        nlohmann::ordered_json a = {{"us", nullptr},
                                    {"reason", "not run (no --compare-autoschedulers)"}};
        for (const auto &r : autoschedulers)
            if (r.name == name) {
                a = {{"us", us_or_null(r.us)},
                     {"reason",
                      r.us ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.reason)},
                     {"runs", r.runs},
                     {"failed_runs", r.failed_runs}};
                if (r.us) {
                    a["layout"] = r.best.knobs;
                    a["machine"] = {{"parallelism", r.best.machine.parallelism},
                                    {"last_level_cache", r.best.machine.last_level_cache},
                                    {"balance", r.best.machine.balance}};
                }
            }
        as[name] = a;
    }
    j["autoschedulers"] = as;
    const AutoschedulerResult *best = best_autoscheduler();
    j["best_autoscheduler"] = best ? nlohmann::ordered_json(best->name) : nullptr;
    j["speedup_vs_best_autoscheduler"] =
        best && tuned_us > 0 ? nlohmann::ordered_json(round3(*best->us / tuned_us)) : nullptr;
    j["speedup_vs_default"] = tuned_us > 0 ? round3(default_us / tuned_us) : 0.0;
    j["tuned_knobs"] = tuned_knobs;
    j["default_knobs"] = default_knobs;
    j["kept_default"] = kept_default;
    j["search"] = exhaustive ? "exhaustive" : "sampled";
    j["search_complete"] = search_complete;
    j["search_end"] = search_end;
    j["trials"] = trials;
    j["failures"] = failures;
    j["failure_kinds"] = failure_kinds;
    j["resumed"] = resumed;
    j["pruned"] = pruned;
    j["noise"] = round3(noise);
    j["search_seconds"] = round3(search_seconds);
    j["total_seconds"] = round3(total_seconds);
    j["cpu"] = cpu.to_json();
    j["target"] = target;
    j["halide"] = halide_version;
    auto path_or_null = [](const std::string &p) {
        return p.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(p);
    };
    j["records"] = path_or_null(records_path);
    j["schedules"] = path_or_null(schedules_path);
    return j;
}

TuneReport tune(const TuneOptions &options, const TuneCallbacks &callbacks) {
    return Run(options, callbacks).run();
}

}  // namespace amq::tune
