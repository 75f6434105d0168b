#include "amq/autotune/schedules_file.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "amq/autotune/jit_kernel.h"
#include "amq/autotune/records.h"

namespace amq::tune {
namespace {

const char *kGeneratedBy =
    "amq tune -- tuned knobs for this CPU; do not edit, rerun amq tune to update (the hand "
    "defaults are in manifest.json)";

const char *kAbout =
    "\"pipelines\" gives knobs of the pipelines in manifest.json (the build reads it: cmake "
    "-DAMQ_SCHEDULES=<this file>, or by default on this CPU); each pipeline takes the knob "
    "set that is best over all its tuned one-thread problems (\"build_choice\": time over "
    "each problem's best, geometric mean and worst), else the knobs of its tuned entry with "
    "the most work. \"tuned\" lists the best knobs per pipeline, shape, bits and threads; "
    "\"variants\" the tuned problems the build compiles a kernel of their own for (shape "
    "and knobs of the winner, which beats the common knobs by more than 3%). Both are the "
    "top (AVX-512) kernel variant's; \"isa\" has the knobs of each lower variant tuned "
    "(amq tune --isa), whose \"pipelines\" lists only its tuned pipelines (the others "
    "build with the top variant's knobs). \"steps\" (amq tune --steps) times RNN steps on "
    "the fused step kernels and on the separate ones per cell, bits, hidden size, batch and "
    "call; the build links the choice (the separate kernels where they are more than 3% "
    "faster). See docs/TUNING.md.";

double rounded(double v) { return std::round(v * 1000.0) / 1000.0; }

// The build's rule (cmake/amqManifest.cmake, _amq_faster): `fast_us` more than
// 3% under `slow_us`; for a per-problem variant against the common kernel and
// for the separate step kernels against the fused one.
bool faster_by_margin(double fast_us, double slow_us) { return fast_us < 0.97 * slow_us; }

// The schedules file at `path` (an empty object when there is none), checked to
// be a tuned schedules file of `cpu`; std::runtime_error naming the file if not.
nlohmann::ordered_json read_schedules(const std::string &path, const CpuIdentity &cpu) {
    nlohmann::ordered_json old = nlohmann::ordered_json::object();
    std::ifstream in(path);
    if (!in) return old;
    try {
        old = nlohmann::ordered_json::parse(in);
        if (old.at("format") != "amq-schedules" || !old.contains("tuned"))
            throw std::runtime_error("not a tuned schedules file");
        if (old.at("cpu").at("id") != cpu.id)
            throw std::runtime_error("it belongs to CPU '" + old["cpu"]["id"].get<std::string>() +
                                     "', this is '" + cpu.id + "'");
    } catch (const std::exception &e) {
        throw std::runtime_error("schedules file " + path + ": " + e.what() +
                                 " (remove it to start a new one)");
    }
    return old;
}

// Writes `doc` to `path` through a temporary file (a reader never sees half a file).
void write_schedules(const std::string &path, const nlohmann::ordered_json &doc) {
    const std::filesystem::path out(path);
    std::error_code ec;
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path(), ec);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        f << schedules_file_text(doc);
        if (!f) throw std::runtime_error("schedules file " + tmp + ": cannot write");
    }
    std::filesystem::rename(tmp, out, ec);
    if (ec)
        throw std::runtime_error("schedules file " + path + ": cannot write (" + ec.message() +
                                 ")");
}

double work(const nlohmann::ordered_json &e) { return problem_from_fields(e).work(); }

bool same_problem(const nlohmann::ordered_json &e, const Problem &p) {
    return problem_from_fields(e) == p;
}

// Pipelines a schedules file may give per-problem variants (schedules/manifest.json,
// "variants": true); the build checks the file against the manifest.
bool has_variants(const std::string &pipeline) { return pipeline == "bgemv"; }

// The common kernel's time on entry e's problem: the entry's "common_us" when the
// tuner measured the common knobs beside the winner; the hand defaults' time when
// the common knobs are the hand defaults (measured beside the winner); else the
// winner's time scaled by the ratio of the two knob sets in the search (each
// measured against the hand defaults in one process, at the highest rung both
// reached). 0 when none is known.
double common_time(const nlohmann::ordered_json &e, const nlohmann::ordered_json &common,
                   const std::vector<Record> &records, const CpuIdentity &cpu,
                   const std::string &halide_version, const std::string &target) {
    if (e.contains("common_us") && e["common_us"].is_number()) return e["common_us"].get<double>();
    const std::string common_key = knobs_key(Knobs(common)),
                      tuned_key = knobs_key(Knobs(e.at("knobs")));
    if (common_key == knobs_key(hand_defaults(e.at("pipeline").get<std::string>())))
        return e.at("default_us").get<double>();
    const Problem p = problem_from_fields(e);
    std::map<int, std::array<std::pair<double, int>, 2>> by_rung;  // rung -> {common, tuned}
    for (const Record &r : records) {
        if (r.source != "search" || r.problem != p || !r.measurement.ok() ||
            !r.candidate.autoscheduler.empty() || r.cpu.id != cpu.id ||
            r.halide_version != halide_version || r.target != target)
            continue;
        const std::string key = knobs_key(r.candidate.knobs);
        for (int which = 0; which < 2; ++which)
            if (key == (which ? tuned_key : common_key)) {
                by_rung[r.rung][which].first += r.measurement.ratio();
                ++by_rung[r.rung][which].second;
            }
    }
    for (auto it = by_rung.rbegin(); it != by_rung.rend(); ++it) {
        const auto &[c, t] = it->second;
        if (c.second && t.second)
            return e.at("tuned_us").get<double>() * (c.first / c.second) / (t.first / t.second);
    }
    return 0.0;
}

}  // namespace

std::string schedules_file_name(const CpuIdentity &cpu) { return cpu.id + ".json"; }

std::optional<CommonKnobs> common_knobs(const std::vector<Record> &records,
                                        const std::vector<Problem> &tuned,
                                        const std::string &pipeline, const CpuIdentity &cpu,
                                        const std::string &halide_version,
                                        const std::string &target) {
    std::vector<Problem> problems;
    for (const Problem &p : tuned)
        if (p.pipeline == pipeline && p.threads == 1 &&
            std::find(problems.begin(), problems.end(), p) == problems.end())
            problems.push_back(p);
    if (problems.size() < 2) return std::nullopt;
    // ratio[problem][knobs] = mean ratio at the highest rung reached.
    struct Score {
        int rung = -1, n = 0;
        double sum = 0;
    };
    std::vector<std::map<std::string, Score>> scores(problems.size());
    std::map<std::string, Knobs> knobs_of;
    for (const Record &r : records) {
        if (r.source != "search" || !r.measurement.ok() || !r.candidate.autoscheduler.empty() ||
            r.cpu.id != cpu.id || r.halide_version != halide_version || r.target != target)
            continue;
        const auto it = std::find(problems.begin(), problems.end(), r.problem);
        if (it == problems.end()) continue;
        const std::string key = knobs_key(r.candidate.knobs);
        knobs_of[key] = r.candidate.knobs;
        Score &s = scores[size_t(it - problems.begin())][key];
        if (r.rung > s.rung) s = Score{r.rung, 0, 0};
        if (r.rung == s.rung) {
            s.sum += r.measurement.ratio();
            ++s.n;
        }
    }
    std::vector<double> best(problems.size(), 0);
    for (size_t i = 0; i < problems.size(); ++i)
        for (const auto &[key, s] : scores[i]) {
            const double v = s.sum / s.n;
            if (best[i] == 0 || v < best[i]) best[i] = v;
        }
    std::optional<CommonKnobs> out;
    for (const auto &[key, knobs] : knobs_of) {
        double log_sum = 0, worst = 0;
        std::string worst_problem;
        bool everywhere = true;
        for (size_t i = 0; i < problems.size() && everywhere; ++i) {
            const auto it = scores[i].find(key);
            if (it == scores[i].end()) {
                everywhere = false;
                break;
            }
            const double rel = it->second.sum / it->second.n / best[i];
            log_sum += std::log(rel);
            if (rel > worst) {
                worst = rel;
                worst_problem = problems[i].str();
            }
        }
        if (!everywhere) continue;
        const double g = std::exp(log_sum / double(problems.size()));
        if (!out || g < out->geomean)
            out = CommonKnobs{knobs, int(problems.size()), g, worst, worst_problem};
    }
    return out;
}

std::string schedules_file_text(const nlohmann::ordered_json &doc) {
    std::string text = doc.dump(2);
    if (text.rfind("{\n  ", 0) == 0) text = "{ " + text.substr(4);  // first line: generated_by
    return text + "\n";
}

Knobs top_variant_knobs(const std::string &path, const std::string &pipeline) {
    Knobs k = hand_defaults(pipeline);
    if (std::ifstream in(path); in) {
        try {
            const nlohmann::json doc = nlohmann::json::parse(in);
            for (const auto &[name, value] : doc.at("pipelines").at(pipeline).items())
                k[name] = value;
        } catch (const std::exception &) {
            // Not readable or no entry: the hand defaults (update_schedules_file
            // refuses an unreadable file with the reason).
        }
    }
    return k;
}

void update_schedules_file(const std::string &path, const CpuIdentity &cpu,
                           const std::string &halide_version, const std::string &target,
                           const TunedEntry &entry, const std::vector<Record> &all_records,
                           const std::string &isa) {
    const bool top = isa.empty() || isa == isa_variants().front().name;
    // A lower variant: only what holds the top level's runtime knobs.
    // (the file's top knobs read once per pipeline, not once per record)
    std::map<std::string, Knobs> top_knobs;
    const auto usable = [&](const std::string &pipeline, const Knobs &knobs) {
        if (top) return true;
        auto it = top_knobs.find(pipeline);
        if (it == top_knobs.end())
            it = top_knobs.emplace(pipeline, top_variant_knobs(path, pipeline)).first;
        return holds_runtime_knobs(pipeline, knobs, it->second);
    };
    std::vector<Record> records;
    for (const Record &r : all_records)
        if (usable(r.problem.pipeline, r.candidate.knobs)) records.push_back(r);
    const nlohmann::ordered_json old = read_schedules(path, cpu);
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    // The section of this variant: the top level, or "isa" -> isa (if any).
    const nlohmann::ordered_json *section = &old;
    if (!top)
        section = old.contains("isa") && old.at("isa").contains(isa) ? &old.at("isa").at(isa)
                                                                       : nullptr;
    // Each kept entry with its problem's fields written anew (as this amq spells
    // them: bits W2A2).
    if (section && section->contains("tuned")) try {
            for (const auto &e : section->at("tuned")) {
                if (same_problem(e, entry.problem) ||
                    !usable(e.at("pipeline").get<std::string>(), e.at("knobs")))
                    continue;
                nlohmann::ordered_json kept = e;
                const nlohmann::ordered_json fields = problem_fields(problem_from_fields(e));
                for (const auto &[key, value] : fields.items()) kept[key] = value;
                entries.push_back(kept);
            }
        } catch (const std::exception &e) {
            throw std::runtime_error("schedules file " + path + ": " + e.what() +
                                     " (remove it to start a new one)");
        }
    const Problem &p = entry.problem;
    nlohmann::ordered_json e = problem_fields(p);
    e["knobs"] = entry.knobs;
    e["tuned_us"] = rounded(entry.tuned_us);
    e["default_us"] = rounded(entry.default_us);
    e["speedup_vs_default"] = entry.tuned_us > 0 ? rounded(entry.default_us / entry.tuned_us) : 0.0;
    if (entry.common_us > 0) e["common_us"] = rounded(entry.common_us);
    e["time"] = entry.time;
    entries.push_back(e);

    // One knob set per pipeline for the build: that of its entry with the most
    // work. The top level starts from the hand defaults; a lower variant's
    // section lists only its tuned pipelines.
    nlohmann::ordered_json pipelines = nlohmann::ordered_json::object();
    if (top) pipelines = hand_defaults_all();
    std::map<std::string, const nlohmann::ordered_json *> chosen;
    for (const auto &e : entries) {
        const std::string name = e.at("pipeline").get<std::string>();
        auto it = chosen.find(name);
        if (it == chosen.end() || work(e) >= work(*it->second)) chosen[name] = &e;
    }
    for (const auto &[name, e] : chosen) pipelines[name] = e->at("knobs");
    // With the records: the knob set that is best over all the tuned problems.
    nlohmann::ordered_json build_choice = nlohmann::ordered_json::object();
    if (!records.empty()) {
        std::vector<Problem> tuned;
        for (const auto &e : entries) tuned.push_back(problem_from_fields(e));
        for (const auto &[name, e] : chosen) {
            const auto c = common_knobs(records, tuned, name, cpu, halide_version, target);
            if (!c) continue;
            pipelines[name] = c->knobs;
            build_choice[name] = {{"knobs", c->knobs},
                                  {"problems", c->problems},
                                  {"geomean_vs_best", rounded(c->geomean)},
                                  {"worst_vs_best", rounded(c->worst)},
                                  {"worst_problem", c->worst_problem}};
        }
    }

    // Per-problem variants for the build: each one-thread entry whose knobs are
    // not the common set and whose time is more than 3% under the common
    // kernel's (the build compiles a kernel for its shape with its knobs).
    nlohmann::ordered_json variants = nlohmann::ordered_json::array();
    for (const auto &e : entries) {
        const std::string name = e.at("pipeline").get<std::string>();
        if (!has_variants(name) || e.at("threads").get<int>() != 1 ||
            knobs_key(Knobs(e.at("knobs"))) == knobs_key(Knobs(pipelines[name])))
            continue;
        const double common_us =
            common_time(e, pipelines[name], records, cpu, halide_version, target);
        const double tuned_us = e.at("tuned_us").get<double>();
        if (common_us <= 0 || !faster_by_margin(tuned_us, common_us)) continue;
        variants.push_back({{"pipeline", name},
                            {"bits", "W" + std::to_string(e.at("k_w").get<int>()) + "A" +
                                         std::to_string(e.at("k_a").get<int>())},
                            {"shape", {e.at("rows"), e.at("cols")}},
                            {"isa", "avx512"},
                            {"knobs", e.at("knobs")},
                            {"tuned_us", tuned_us},
                            {"common_us", rounded(common_us)}});
    }

    nlohmann::ordered_json doc;
    doc["generated_by"] = kGeneratedBy;
    doc["format"] = "amq-schedules";
    doc["version"] = 1;
    doc["about"] = kAbout;
    doc["cpu"] = cpu.to_json();
    doc["halide"] = halide_version;
    doc["target"] = top ? target : old.value("target", isa_variants().front().target.to_string());
    doc["updated"] = utc_now();
    doc["pipelines"] = top ? pipelines : old.value("pipelines", nlohmann::ordered_json(hand_defaults_all()));
    doc["build_choice"] =
        top ? build_choice : old.value("build_choice", nlohmann::ordered_json::object());
    doc["tuned"] = top ? entries : old.value("tuned", nlohmann::ordered_json::array());
    doc["isa"] = old.value("isa", nlohmann::ordered_json::object());
    if (!top)
        doc["isa"][isa] = {{"target", target},
                           {"pipelines", pipelines},
                           {"build_choice", build_choice},
                           {"tuned", entries}};
    doc["variants"] = top ? variants : old.value("variants", nlohmann::ordered_json::array());
    doc["steps"] = old.value("steps", nlohmann::ordered_json::array());
    write_schedules(path, doc);
}

bool step_separate_wins(double fused_us, double separate_us) {
    return faster_by_margin(separate_us, fused_us);
}

void update_step_choices(const std::string &path, const CpuIdentity &cpu,
                         const std::vector<TunedStep> &steps) {
    nlohmann::ordered_json doc = read_schedules(path, cpu);
    if (doc.empty()) {  // a new file: the hand defaults, nothing tuned
        doc["generated_by"] = kGeneratedBy;
        doc["format"] = "amq-schedules";
        doc["version"] = 1;
        doc["cpu"] = cpu.to_json();
        doc["pipelines"] = hand_defaults_all();
        doc["build_choice"] = nlohmann::ordered_json::object();
        doc["tuned"] = nlohmann::ordered_json::array();
        doc["isa"] = nlohmann::ordered_json::object();
        doc["variants"] = nlohmann::ordered_json::array();
    }
    doc["about"] = kAbout;
    doc["updated"] = utc_now();
    auto key = [](const nlohmann::ordered_json &e) {
        return std::make_tuple(e.value("cell", ""), e.value("bits", ""), e.value("call", ""),
                               e.value("batch", size_t(0)), e.value("hidden", size_t(0)));
    };
    std::vector<nlohmann::ordered_json> all;
    for (const TunedStep &t : steps) {
        if (t.fused_us <= 0 || t.separate_us <= 0)
            throw std::invalid_argument("update_step_choices: " + t.cell + " " + t.bits +
                                        " hidden " + std::to_string(t.hidden) +
                                        ": times must be above 0");
        all.push_back({{"cell", t.cell},
                       {"bits", t.bits},
                       {"hidden", t.hidden},
                       {"batch", t.batch},
                       {"call", t.call},
                       {"fused_us", rounded(t.fused_us)},
                       {"separate_us", rounded(t.separate_us)},
                       {"choice", step_separate_wins(t.fused_us, t.separate_us) ? "separate" : "fused"},
                       {"time", t.time.empty() ? utc_now() : t.time}});
    }
    for (const auto &e : doc.value("steps", nlohmann::ordered_json::array())) {
        const bool replaced = std::any_of(all.begin(), all.begin() + long(steps.size()),
                                          [&](const auto &n) { return key(n) == key(e); });
        if (!replaced) all.push_back(e);
    }
    std::stable_sort(all.begin(), all.end(),
                     [&](const auto &x, const auto &y) { return key(x) < key(y); });
    doc["steps"] = all;
    write_schedules(path, doc);
}

}  // namespace amq::tune
