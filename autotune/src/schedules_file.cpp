#include "amq/autotune/schedules_file.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "amq/autotune/records.h"

namespace amq::tune {
namespace {

const char *kGeneratedBy =
    "amq tune -- tuned knobs for this CPU; do not edit, rerun amq tune to update (the hand "
    "defaults are in defaults.json)";

double rounded(double v) { return std::round(v * 1000.0) / 1000.0; }

double work(const nlohmann::ordered_json &e) {
    return e.at("rows").get<double>() * e.at("cols").get<double>() * e.at("k_w").get<double>() *
           e.at("k_a").get<double>();
}

bool same_problem(const nlohmann::ordered_json &e, const Problem &p) {
    return e.at("pipeline") == p.pipeline && e.at("rows") == p.rows && e.at("cols") == p.cols &&
           e.at("k_w") == p.k_w && e.at("k_a") == p.k_a && e.at("threads") == p.threads;
}

}  // namespace

std::string schedules_file_name(const CpuIdentity &cpu) { return cpu.id + ".json"; }

std::string schedules_file_text(const nlohmann::ordered_json &doc) {
    std::string text = doc.dump(2);
    if (text.rfind("{\n  ", 0) == 0) text = "{ " + text.substr(4);  // first line: generated_by
    return text + "\n";
}

void update_schedules_file(const std::string &path, const CpuIdentity &cpu,
                           const std::string &halide_version, const std::string &target,
                           const TunedEntry &entry) {
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    if (std::ifstream in(path); in) {
        nlohmann::ordered_json old;
        try {
            old = nlohmann::ordered_json::parse(in);
            if (old.at("format") != "amq-schedules" || !old.contains("tuned"))
                throw std::runtime_error("not a tuned schedules file");
            if (old.at("cpu").at("id") != cpu.id)
                throw std::runtime_error("it belongs to CPU '" +
                                         old["cpu"]["id"].get<std::string>() + "', this is '" +
                                         cpu.id + "'");
            for (const auto &e : old.at("tuned"))
                if (!same_problem(e, entry.problem)) entries.push_back(e);
        } catch (const std::exception &e) {
            throw std::runtime_error("schedules file " + path + ": " + e.what() +
                                     " (remove it to start a new one)");
        }
    }
    const Problem &p = entry.problem;
    entries.push_back({{"pipeline", p.pipeline},
                       {"shape", p.shape_str()},
                       {"rows", p.rows},
                       {"cols", p.cols},
                       {"bits", p.bits_str()},
                       {"k_w", p.k_w},
                       {"k_a", p.k_a},
                       {"threads", p.threads},
                       {"knobs", entry.knobs},
                       {"tuned_us", rounded(entry.tuned_us)},
                       {"default_us", rounded(entry.default_us)},
                       {"speedup_vs_default",
                        entry.tuned_us > 0 ? rounded(entry.default_us / entry.tuned_us) : 0.0},
                       {"time", entry.time}});

    // One knob set per pipeline for the build: that of its entry with the most work.
    nlohmann::ordered_json pipelines = hand_defaults_all();
    std::map<std::string, const nlohmann::ordered_json *> chosen;
    for (const auto &e : entries) {
        const std::string name = e.at("pipeline").get<std::string>();
        auto it = chosen.find(name);
        if (it == chosen.end() || work(e) >= work(*it->second)) chosen[name] = &e;
    }
    for (const auto &[name, e] : chosen) pipelines[name] = e->at("knobs");

    nlohmann::ordered_json doc;
    doc["generated_by"] = kGeneratedBy;
    doc["format"] = "amq-schedules";
    doc["version"] = 1;
    doc["about"] =
        "\"pipelines\" has the structure of defaults.json (the build reads it: cmake "
        "-DAMQ_SCHEDULES=<this file>); each pipeline takes the knobs of its tuned entry with the "
        "most work. \"tuned\" lists the best knobs per pipeline, shape, bits and threads. See "
        "docs/TUNING.md.";
    doc["cpu"] = cpu.to_json();
    doc["halide"] = halide_version;
    doc["target"] = target;
    doc["updated"] = utc_now();
    doc["pipelines"] = pipelines;
    doc["tuned"] = entries;

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

}  // namespace amq::tune
