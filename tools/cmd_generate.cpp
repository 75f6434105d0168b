// amq generate: AOT kernels for a target CPU, to link into an application.
//
//   amq generate --target aarch64 --bits W2A2,W3A3 --out kernels/
//   amq generate --target host --model model.amq --out kernels/
//
// The kernel list and default knobs come from schedules/manifest.json, the
// knobs from a schedules file (default: the one amq was built with) checked
// against it. Runs the amq_generators executable (installed beside amq) once per
// kernel, and writes into --out: one static library and header per kernel
// (amq_<kernel>.a/.h), one shared Halide runtime (amq_halide_runtime.a), the Halide
// runtime headers, amq/weight_layout.h, amq_kernels.h and amqKernels.cmake (from
// the templates cmake/amq_kernels.h.in and cmake/amqKernels.cmake.in) and
// manifest.json (per kernel: pipeline, shape, bits, knobs, target). With --model,
// only the kernels that model calls, with the per-problem variants of its shapes.
// See docs/USING.md.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "amq/model.h"
#include "commands.h"

extern char **environ;

namespace amq::tools {
namespace {

namespace fs = std::filesystem;
using Knobs = std::vector<std::pair<std::string, std::string>>;  // ordered key=value

struct GenerateArgs {
    std::string target, bits, model, schedules, out, generator;
    int jobs = 0;
    bool assembly = false;
};

// The short target names and the Halide targets they stand for. A list of several
// targets makes a run-time dispatching library: most capable first, baseline last.
struct ShortTarget {
    const char *name;
    std::vector<std::string> halide;
    const char *about;
};
const std::vector<ShortTarget> &short_targets() {
    static const std::vector<ShortTarget> t = {
        {"host", {"host"}, "the CPU amq generate runs on"},
        {"x86-64-avx512",
         {"x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-"
          "f16c-fma-sse41"},
         "AVX-512 with vpopcntq (Ice Lake, Sapphire Rapids, Zen 4 and later)"},
        {"x86-64-avx2", {"x86-64-linux-avx-avx2-f16c-fma-sse41"}, "AVX2 + FMA (Haswell, Zen)"},
        {"x86-64-sse41", {"x86-64-linux-sse41"}, "SSE4.1, any x86-64 CPU of the last 15 years"},
        {"x86-64-multi",
         {"x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-"
          "f16c-fma-sse41",
          "x86-64-linux-avx-avx2-f16c-fma-sse41", "x86-64-linux-sse41"},
         "the three above in one library, chosen at run time (as the amq build)"},
        {"aarch64", {"arm-64-linux"}, "64-bit Arm Linux, NEON"},
        {"aarch64-dotprod", {"arm-64-linux-arm_dot_prod"}, "64-bit Arm Linux with the dot product"},
    };
    return t;
}

std::string valid_targets_text() {
    std::string s = "valid targets:\n";
    for (const ShortTarget &t : short_targets()) {
        char line[160];
        std::snprintf(line, sizeof line, "  %-16s %s\n", t.name, t.about);
        s += line;
    }
    s += "  or a Halide target string arch-bits-os[-feature...], e.g. arm-64-linux-arm_dot_prod "
         "or x86-64-linux-avx2-fma-sse41 (several, comma separated, for run-time dispatch)";
    return s;
}

std::string join(const std::vector<std::string> &v, const std::string &sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
}

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
    if (!s.empty() && s.back() == sep) out.push_back("");
    return out;
}

// --target -> Halide target strings (without no_runtime). Checks the form only;
// Halide itself checks the features when the runtime is generated.
std::vector<std::string> resolve_target(const std::string &text) {
    for (const ShortTarget &t : short_targets())
        if (text == t.name) return t.halide;
    static const std::regex halide_form(
        "(host|(x86|arm|powerpc|hexagon|wasm|riscv|mips)-(32|64)-"
        "(linux|windows|osx|android|ios|qurt|noos|fuchsia|wasmrt))(-[a-z0-9_]+)*");
    std::vector<std::string> out;
    for (std::string t : split(text, ',')) {
        if (!std::regex_match(t, halide_form))
            throw UsageError("--target '" + text + "': unknown target" +
                             (text.find(',') != std::string::npos ? " '" + t + "'" : "") + "; " +
                             valid_targets_text());
        // no_runtime is added for the kernels, and must not be on the runtime.
        t = std::regex_replace(t, std::regex("-no_runtime(?=-|$)"), "");
        out.push_back(t);
    }
    return out;
}

// "W2A2,W3A3" (or the alias "2x2,3x3", or "all") -> sorted unique pairs.
std::vector<spec::Bits> parse_bits_list(const std::string &text) {
    std::set<std::pair<int, int>> pairs;
    if (text == "all") {
        for (int w = 1; w <= 4; ++w)
            for (int a = 1; a <= 4; ++a) pairs.insert({w, a});
    } else {
        for (const std::string &item : split(text, ',')) {
            try {
                const spec::Bits b = parse_bits("--bits", item);
                pairs.insert({b.w, b.a});
            } catch (const UsageError &) {
                throw UsageError("--bits '" + text + "': '" + item +
                                 "' is not a bit pair; valid pairs are W<w>A<a> with w (weight bits) "
                                 "and a (activation bits) each in 1..4 (W1A1, W1A2, ... W4A4; "
                                 "the alias 2x2 works too), comma separated, e.g. --bits "
                                 "W2A2,W3A3, or --bits all");
            }
        }
    }
    std::vector<spec::Bits> out;
    for (auto [w, a] : pairs) out.push_back({w, a});
    return out;
}

// The path of the running executable's directory.
fs::path exe_dir() {
    std::error_code ec;
    fs::path p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path() : p.parent_path().lexically_normal();
}

// The first existing file of the candidates, or "".
fs::path first_existing(const std::vector<fs::path> &candidates) {
    for (const fs::path &p : candidates)
        if (!p.empty() && fs::is_regular_file(p)) return p;
    return {};
}

std::string list_paths(const std::vector<fs::path> &v) {
    std::string s;
    for (const fs::path &p : v)
        if (!p.empty()) s += "\n  " + p.string();
    return s;
}

fs::path find_generator(const GenerateArgs &a) {
    if (!a.generator.empty()) {
        if (!fs::is_regular_file(a.generator) || access(a.generator.c_str(), X_OK) != 0)
            throw UsageError("--generator '" + a.generator + "': not an executable file");
        return a.generator;
    }
    const std::vector<fs::path> candidates = {exe_dir() / "amq_generators",
                                              fs::path(AMQ_GENERATORS_BUILD_PATH)};
    fs::path p = first_existing(candidates);
    if (p.empty())
        throw std::runtime_error(
            "cannot find the amq_generators executable; looked at:" + list_paths(candidates) +
            "\ngive its path with --generator (it is installed beside amq, built in "
            "<build>/generators/)");
    return p;
}

// The kernel manifest (schedules/manifest.json): installed beside amq's
// schedules, else the source tree's.
fs::path find_manifest() {
    return first_existing(
        {(exe_dir() / ".." / "share" / "amq" / "schedules" / "manifest.json").lexically_normal(),
         fs::path(AMQ_SOURCE_MANIFEST)});
}

// The schedules amq itself was built with (AMQ_SCHEDULES: tuned for the build
// machine's CPU, or the hand defaults), installed as share/amq/schedules/build.json.
// Kernels generated with them have the weight layout amq::runtime packs for.
fs::path build_schedules() {
    return first_existing(
        {(exe_dir() / ".." / "share" / "amq" / "schedules" / "build.json").lexically_normal(),
         fs::path(AMQ_BUILD_SCHEDULES)});
}

nlohmann::json read_json(const fs::path &file, const std::string &what) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error(what + " '" + file.string() + "': cannot be read");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error &e) {
        throw std::runtime_error(what + " '" + file.string() + "': not JSON: " + e.what());
    }
}

std::string knob_text(const nlohmann::json &v) {
    return v.is_string() ? v.get<std::string>() : v.dump();
}

// A schedules file read against the manifest, as the build does
// (cmake/amqManifest.cmake): knob sets over the defaults, and the variants that
// beat the common kernel by more than 3%. Bad input throws, naming the file,
// the entry and the reason.
struct Variant {
    int k_w = 0, k_a = 0;
    size_t rows = 0, cols = 0;
    Knobs knobs;
    double tuned_us = 0, common_us = 0;
};
struct Schedules {
    nlohmann::json manifest;
    std::string file;
    std::map<std::string, Knobs> knobs;  // per pipeline, the file's over the defaults
    // per pipeline, the generator param isa_knobs ("avx2/k:v,...+sse41/..."):
    // the knobs the lower ISA variants set apart from the top (isa_knobs.h)
    std::map<std::string, std::string> isa_knobs;
    std::vector<Variant> variants;
    std::string tuned_target;  // "target" of a file written by amq tune, if any
};

[[noreturn]] void bad_schedules(const std::string &file, const std::string &entry,
                                const std::string &why) {
    throw std::runtime_error("schedules file '" + file + "': " + entry + ": " + why +
                             " (the kernels and their knobs are listed in schedules/manifest.json)");
}

// The knob set `given` of `pipeline` (checked) over the manifest's defaults.
Knobs knob_set(const Schedules &s, const std::string &entry, const std::string &pipeline,
               const nlohmann::json &given) {
    const nlohmann::json &spec = s.manifest["pipelines"][pipeline]["knobs"];
    if (!given.is_object()) bad_schedules(s.file, entry, "expected an object of knobs");
    Knobs out;
    for (const auto &[key, v] : given.items()) {
        if (!spec.contains(key)) {
            std::vector<std::string> known;
            for (const auto &k : spec.items()) known.push_back(k.key());
            bad_schedules(s.file, entry,
                          pipeline + " has no knob '" + key + "' (its knobs: " + join(known, ", ") + ")");
        }
        const nlohmann::json &k = spec[key];
        const bool is_int = k["type"] == "int";
        if (is_int ? !v.is_number_integer() : !v.is_string())
            bad_schedules(s.file, entry, "knob " + pipeline + "." + key + " = " + v.dump() +
                                             " is not " + (is_int ? "an integer" : "a string"));
        if (k.contains("values")) {
            if (std::find(k["values"].begin(), k["values"].end(), v) == k["values"].end()) {
                std::vector<std::string> allowed;
                for (const auto &a : k["values"]) allowed.push_back(knob_text(a));
                bad_schedules(s.file, entry, "knob " + pipeline + "." + key + " = " + knob_text(v) +
                                                 " is not allowed (allowed: " + join(allowed, ", ") + ")");
            }
        } else if (v < k["min"] || v > k["max"]) {
            bad_schedules(s.file, entry, "knob " + pipeline + "." + key + " = " + knob_text(v) +
                                             " is out of range (allowed: " + k["min"].dump() + ".." +
                                             k["max"].dump() + ")");
        }
        out.push_back({key, knob_text(v)});
    }
    for (const auto &[key, k] : spec.items())
        if (!given.contains(key)) out.push_back({key, knob_text(k["default"])});
    return out;
}

std::string knob(const Knobs &k, const std::string &key, const std::string &fallback) {
    for (const auto &[name, value] : k)
        if (name == key) return value;
    return fallback;
}

Schedules load_schedules(const std::string &user_file) {
    Schedules s;
    const fs::path manifest = find_manifest();
    if (manifest.empty())
        throw std::runtime_error("cannot find schedules/manifest.json (looked beside amq in "
                                 "../share/amq/schedules/ and at " AMQ_SOURCE_MANIFEST ")");
    s.manifest = read_json(manifest, "manifest");
    const std::string file = user_file.empty() ? build_schedules().string() : user_file;
    if (file.empty() || !fs::is_regular_file(file))
        throw UsageError("--schedules '" + file + "': no such file");
    s.file = fs::absolute(file).string();
    const nlohmann::json j = read_json(s.file, "schedules file");
    if (!j.is_object() || !j.contains("pipelines") || !j["pipelines"].is_object())
        bad_schedules(s.file, "pipelines", "expected an object of knob sets per pipeline");
    if (j.contains("target") && j["target"].is_string())
        s.tuned_target = j["target"].get<std::string>();
    std::vector<std::string> pipelines;
    for (const auto &p : s.manifest["pipelines"].items()) pipelines.push_back(p.key());
    for (const auto &p : j["pipelines"].items())
        if (!s.manifest["pipelines"].contains(p.key()))
            bad_schedules(s.file, "pipelines." + p.key(),
                          "unknown pipeline '" + p.key() + "', expected some of " + join(pipelines, ", "));
    for (const std::string &p : pipelines)
        s.knobs[p] = knob_set(s, "pipelines." + p, p,
                              j["pipelines"].contains(p) ? j["pipelines"][p] : nlohmann::json::object());
    // Lower ISA variants: the knobs their "isa" sections set apart from the top's.
    const nlohmann::json isas = j.value("isa", nlohmann::json::object());
    std::vector<std::string> isa_names;
    for (const auto &v : s.manifest["isa"]) isa_names.push_back(v["name"].get<std::string>());
    for (const auto &[isa, section] : isas.items()) {
        if (std::find(isa_names.begin(), isa_names.end(), isa) == isa_names.end())
            bad_schedules(s.file, "isa." + isa,
                          "no ISA variant '" + isa + "' (ISA variants: " + join(isa_names, ", ") + ")");
        if (isa == isa_names.front()) continue;
        const nlohmann::json own_pipelines = section.value("pipelines", nlohmann::json::object());
        for (const auto &[p, given] : own_pipelines.items()) {
            const std::string entry = "isa." + isa + ".pipelines." + p;
            if (!s.manifest["pipelines"].contains(p))
                bad_schedules(s.file, entry, "no pipeline '" + p + "' in the manifest");
            const Knobs own = knob_set(s, entry, p, given);
            std::vector<std::string> diff;
            for (const auto &[key, value] : own) {
                const std::string top = knob(s.knobs.at(p), key, "");
                if (!given.contains(key) || value == top) continue;
                if (s.manifest["pipelines"][p]["knobs"][key].value("runtime", false))
                    bad_schedules(s.file, entry,
                                  "knob " + p + "." + key + " = " + value + " differs from the top variant's " +
                                      top + ", but the runtime packs weights or plans batches by it for every "
                                      "ISA variant (\"runtime\": true in the manifest); tune the variant again "
                                      "with amq tune --isa " + isa + ", which holds it");
                if (!s.manifest["pipelines"][p].value("tunable", false))
                    bad_schedules(s.file, entry,
                                  p + " has no per-ISA knobs (only the tunable pipelines' generators read them)");
                diff.push_back(key + ":" + value);
            }
            if (!diff.empty())
                s.isa_knobs[p] += (s.isa_knobs[p].empty() ? "" : "+") + isa + "/" + join(diff, ",");
        }
    }
    const nlohmann::json variants = j.value("variants", nlohmann::json::array());
    for (size_t i = 0; i < variants.size(); ++i) {
        const nlohmann::json &v = variants[i];
        std::string entry = "variants[" + std::to_string(i) + "]";
        const std::string p = v.value("pipeline", "");
        if (!s.manifest["pipelines"].contains(p) || !s.manifest["pipelines"][p].value("variants", false))
            bad_schedules(s.file, entry, "the manifest has no per-problem variants of '" + p + "'");
        Variant out;
        std::smatch m;
        const std::string bits = v.value("bits", "");
        static const std::regex bits_form("W([1-4])A([1-4])");
        if (!std::regex_match(bits, m, bits_form))
            bad_schedules(s.file, entry, "\"bits\" '" + bits + "' is not WnAm with n, m in 1..4");
        out.k_w = std::stoi(m[1]);
        out.k_a = std::stoi(m[2]);
        const nlohmann::json shape = v.value("shape", nlohmann::json());
        if (!shape.is_array() || shape.size() != 2 || !shape[0].is_number_unsigned() ||
            !shape[1].is_number_unsigned() || shape[0] < 1 || shape[1] < 1 || shape[0] > 1048576 ||
            shape[1] > 1048576)
            bad_schedules(s.file, entry, "\"shape\" must be [rows, cols] with each in 1..1048576");
        out.rows = shape[0];
        out.cols = shape[1];
        entry += " (" + p + " " + bits + " " + shape_str(out.rows, out.cols) + ")";
        out.knobs = knob_set(s, entry, p, v.value("knobs", nlohmann::json()));
        if (!v.value("tuned_us", nlohmann::json()).is_number() ||
            !v.value("common_us", nlohmann::json()).is_number())
            bad_schedules(s.file, entry, "\"tuned_us\" and \"common_us\" must be numbers (microseconds)");
        out.tuned_us = v["tuned_us"];
        out.common_us = v["common_us"];
        // As the build: top-ISA winners that beat the common kernel by more than 3%.
        if (v.value("isa", "") == "avx512" && out.tuned_us * 100 < out.common_us * 97)
            s.variants.push_back(out);
    }
    return s;
}

// A knob's text as JSON: a number for an integer, else a string.
nlohmann::ordered_json knob_json(const std::string &value) {
    return std::regex_match(value, std::regex("-?[0-9]+")) ? nlohmann::ordered_json(std::stoll(value))
                                                           : nlohmann::ordered_json(value);
}

// The generator param isa_knobs ("avx2/k:v,k:v+sse41/k:v") as {"avx2": {"k": v, ...}, ...}.
nlohmann::ordered_json isa_knobs_json(const std::string &spec) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    std::stringstream sections(spec);
    for (std::string section; std::getline(sections, section, '+');) {
        const size_t slash = section.find('/');
        std::stringstream kvs(section.substr(slash + 1));
        for (std::string kv; std::getline(kvs, kv, ',');) {
            const size_t colon = kv.find(':');
            out[section.substr(0, slash)][kv.substr(0, colon)] = knob_json(kv.substr(colon + 1));
        }
    }
    return out;
}

// One generator run: kernel amq_<name> from generator <gen> with params; what
// manifest.json says of it.
struct Kernel {
    std::string name, generator, pipeline, bits;
    size_t rows = 0, cols = 0;  // a per-problem variant's shape; 0 = any
    Knobs params;
    std::string features;  // Halide target features added to every target ("" = none)
};

// Which kernels to make: bit pairs, and with --model only what the model calls.
struct Selection {
    std::vector<spec::Bits> bits;
    std::set<std::string> pipelines;           // empty: every pipeline
    std::set<int> iters;                       // quantize_act's; empty: all
    std::set<std::pair<size_t, size_t>> shapes;  // binary products' (rows, cols); empty: all
};

bool selected_pair(const Selection &sel, int w, int a) {
    for (const spec::Bits &b : sel.bits)
        if (b.w == w && b.a == a) return true;
    return false;
}

// The kernels of the manifest's instances (as generators/CMakeLists.txt builds
// them) that the selection keeps, then the per-problem variants and the bgemm
// kernels of their layouts.
std::vector<Kernel> kernel_list(const Selection &sel, const Schedules &s) {
    std::vector<Kernel> out;
    for (const auto &[p, spec] : s.manifest["pipelines"].items()) {
        if (!sel.pipelines.empty() && !sel.pipelines.count(p)) continue;
        for (const auto &inst : spec["instances"]) {
            Knobs extra;
            const nlohmann::json fixed = inst.value("fixed", nlohmann::json::object()),
                                 shared = inst.value("shared", nlohmann::json::object());
            for (const auto &[k, v] : fixed.items()) extra.push_back({k, knob_text(v)});
            for (const auto &[k, from] : shared.items())
                extra.push_back({k, knob(s.knobs.at(from.get<std::string>()), k, "")});
            std::vector<Knobs> combos = {{}};
            for (const auto &param : inst.value("params", nlohmann::json::array())) {
                std::vector<Knobs> next;
                for (const Knobs &c : combos)
                    for (const auto &v : param[1]) {
                        Knobs n = c;
                        n.push_back({param[0].get<std::string>(), knob_text(v)});
                        next.push_back(n);
                    }
                combos = next;
            }
            for (const Knobs &c : combos) {
                Kernel k{inst["name"].get<std::string>(), spec["generator"].get<std::string>(), p,
                         "", 0, 0, c};
                for (const auto &[key, value] : c) {
                    const std::string brace = "{" + key + "}";
                    k.name.replace(k.name.find(brace), brace.size(), value);
                }
                // The bits and cycles of the instance: its params, or its fixed
                // values (the fused steps are built for a few fixed bit pairs).
                auto value = [&](const std::string &key) {
                    const std::string v = knob(c, key, "");
                    return v.empty() && fixed.contains(key) ? knob_text(fixed[key]) : v;
                };
                const std::string w = value("k_w"), a = value("k_a"), q = value("k"),
                                  it = value("iters");
                if (!w.empty() && !selected_pair(sel, std::stoi(w), std::stoi(a))) continue;
                if (!q.empty() && std::none_of(sel.bits.begin(), sel.bits.end(), [&](const spec::Bits &b) {
                        return b.a == std::stoi(q);
                    }))
                    continue;
                if (!it.empty() && !sel.iters.empty() && !sel.iters.count(std::stoi(it))) continue;
                k.bits = !w.empty() ? "W" + w + "A" + a : !q.empty() ? "A" + q : "";
                k.params.insert(k.params.end(), extra.begin(), extra.end());
                const Knobs &knobs = s.knobs.at(p);
                k.params.insert(k.params.end(), knobs.begin(), knobs.end());
                if (s.isa_knobs.count(p)) k.params.push_back({"isa_knobs", s.isa_knobs.at(p)});
                out.push_back(k);
                // The manifest's unchecked_copies: the same kernel without Halide's
                // checks of its buffers, which the runtime calls once a step.
                if (spec.value("unchecked_copies", false)) {
                    k.name += "_unchecked";
                    k.features = s.manifest["unchecked_target_features"].get<std::string>();
                    out.push_back(k);
                }
            }
        }
    }
    const Knobs &bgemv = s.knobs.at("bgemv");
    std::set<std::string> layouts;
    for (const Variant &v : s.variants) {
        if (!selected_pair(sel, v.k_w, v.k_a)) continue;
        if (!sel.shapes.empty() && !sel.shapes.count({v.rows, v.cols})) continue;
        const std::string bits = "w" + std::to_string(v.k_w) + "a" + std::to_string(v.k_a);
        Kernel k{"variant_bgemv_" + bits + "_" + shape_str(v.rows, v.cols), "bgemv", "bgemv",
                 "W" + std::to_string(v.k_w) + "A" + std::to_string(v.k_a), v.rows, v.cols,
                 {{"k_w", std::to_string(v.k_w)},
                  {"k_a", std::to_string(v.k_a)},
                  {"rows", std::to_string(v.rows)},
                  {"cols", std::to_string(v.cols)}}};
        k.params.insert(k.params.end(), v.knobs.begin(), v.knobs.end());
        out.push_back(k);
        // A layout of its own: the runtime's bgemm kernels for it (every k_a).
        const std::string layout = knob(v.knobs, "layout", ""), tile = knob(v.knobs, "tile", "");
        const std::string lay = layout + tile + "_w" + std::to_string(v.k_w);
        if ((layout == knob(bgemv, "layout", "") && tile == knob(bgemv, "tile", "")) ||
            !layouts.insert(lay).second)
            continue;
        for (int a = 1; a <= 4; ++a) {
            Kernel b{"bgemm_" + lay + "a" + std::to_string(a), "bgemm", "bgemm",
                     "W" + std::to_string(v.k_w) + "A" + std::to_string(a), 0, 0,
                     {{"k_w", std::to_string(v.k_w)},
                      {"k_a", std::to_string(a)},
                      {"layout", layout},
                      {"tile", tile}}};
            const Knobs &bk = s.knobs.at("bgemm");
            b.params.insert(b.params.end(), bk.begin(), bk.end());
            if (s.isa_knobs.count("bgemm")) b.params.push_back({"isa_knobs", s.isa_knobs.at("bgemm")});
            out.push_back(b);
        }
    }
    return out;
}

// --model: the bit pair, quantize_act's cycles, the cell, the fused step and the
// shapes of the binary products of the model; f32_gemv when it has float matrices.
Selection model_selection(const std::string &path) {
    const ModelFile m = load_model(path);  // throws, naming the file and tensor
    if (!m.quantized())
        throw UsageError("--model '" + path +
                         "' is a float model; quantize it first (amq quantize), then generate "
                         "the kernels it calls");
    Selection sel;
    sel.bits = {{m.k_w, m.k_a}};
    const bool lstm = m.shape.arch == Arch::lstm;
    sel.pipelines = {"bgemv", "bgemm", "quantize_act", "quantize_act_batch",
                     lstm ? "lstm_cell" : "gru_cell"};
    // The fused steps of the architecture, which the runner calls at batch 1, for
    // batches and (the full step, from x_t) in step() (where one is built for the
    // model's bits and cycles; never with a projection or ternary activations).
    if (m.shape.proj_size == 0 && m.act_method != "ternary") {
        const std::string arch = lstm ? "lstm" : "gru";
        for (const char *form : {"_step", "_step_batch", "_full_step"})
            sel.pipelines.insert(arch + form);
    }
    sel.iters = {m.act_method == "greedy" ? 0 : m.act_iters};
    for (const auto &[name, q] : m.quant) sel.shapes.insert({q.rows, q.cols});
    // A float decoder (or a tied one: the float embedding) runs on f32_gemv.
    for (const auto &[name, t] : m.floats)
        if (t.shape.size() == 2 && (name != "embedding.weight" || m.shape.tied))
            sel.pipelines.insert("f32_gemv");
    return sel;
}

struct Job {
    std::string label;
    std::vector<std::string> argv;
    fs::path log;
};

pid_t spawn(const Job &job) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, job.log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char *> argv;
    for (const std::string &s : job.argv) argv.push_back(const_cast<char *>(s.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot run " + job.argv[0] + ": " + std::strerror(rc));
    return pid;
}

std::string read_text(const fs::path &p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The last `n` lines of a log.
std::string tail(const std::string &text, int n) {
    size_t pos = text.size();
    while (pos > 0 && (text[pos - 1] == '\n')) --pos;
    const size_t end = pos;
    for (int i = 0; i < n && pos > 0; ++i) {
        pos = text.rfind('\n', pos - 1);
        if (pos == std::string::npos) {
            pos = 0;
            break;
        }
    }
    return text.substr(pos == 0 ? 0 : pos + 1, end - (pos == 0 ? 0 : pos + 1));
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// Runs the jobs, `parallel` at a time, printing "[i/n] label ... 1.2 s" as each
// ends; `first` is the count of steps already done, `total` of all steps. Throws
// naming the first job that failed, with the end of its output.
void run_jobs(const std::vector<Job> &jobs, int parallel, size_t first, size_t total) {
    using clock = std::chrono::steady_clock;
    std::map<pid_t, std::pair<size_t, clock::time_point>> running;
    size_t next = 0, done = first;
    const Job *failed = nullptr;
    int failed_status = 0;
    while ((next < jobs.size() && !failed) || !running.empty()) {
        while (!failed && next < jobs.size() && int(running.size()) < parallel) {
            running[spawn(jobs[next])] = {next, clock::now()};
            ++next;
        }
        int status = 0;
        const pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("waiting for amq_generators: ") +
                                     std::strerror(errno));
        }
        auto it = running.find(pid);
        if (it == running.end()) continue;
        const Job &job = jobs[it->second.first];
        const double secs = std::chrono::duration<double>(clock::now() - it->second.second).count();
        running.erase(it);
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        std::fprintf(stderr, "[%zu/%zu] %s ... %.1f s%s\n", ++done, total, job.label.c_str(), secs,
                     ok ? "" : " FAILED");
        if (!ok && !failed) failed = &job, failed_status = status;
    }
    if (failed)
        throw std::runtime_error("amq_generators failed on " + failed->label + " (" +
                                 exit_text(failed_status) + "):\n  " + join(failed->argv, " ") +
                                 "\n" + tail(read_text(failed->log), 25) +
                                 "\n(full output: " + failed->log.string() + ")");
}

// Copies `files` from the first of `dirs` that holds them all into `dest`; false
// when none does.
bool copy_headers(const std::vector<fs::path> &dirs, const std::vector<std::string> &files,
                  const fs::path &dest) {
    for (const fs::path &d : dirs) {
        if (!std::all_of(files.begin(), files.end(),
                         [&](const std::string &f) { return fs::is_regular_file(d / f); }))
            continue;
        fs::create_directories(dest);
        for (const std::string &f : files)
            fs::copy_file(d / f, dest / f, fs::copy_options::overwrite_existing);
        return true;
    }
    return false;
}

void write_file(const fs::path &p, const std::string &text) {
    std::ofstream out(p);
    out << text;
    if (!out) throw std::runtime_error("cannot write '" + p.string() + "'");
}

std::string arch_of(const std::string &halide_target) {
    if (halide_target.rfind("host", 0) == 0) return "host";
    return halide_target.substr(0, halide_target.find('-'));
}

// A template of amq's cmake/ folder (installed in share/amq/templates) with each
// @NAME@ replaced by its value, as CMake's configure_file(@ONLY) does; an
// @NAME@ without a value throws.
std::string configure_template(const std::string &name,
                               const std::map<std::string, std::string> &values) {
    const std::vector<fs::path> candidates = {
        (exe_dir() / ".." / "share" / "amq" / "templates" / name).lexically_normal(),
        fs::path(AMQ_SOURCE_CMAKE_DIR) / name};
    const fs::path file = first_existing(candidates);
    if (file.empty())
        throw std::runtime_error("cannot find the template " + name + "; looked at:" +
                                 list_paths(candidates));
    const std::string text = read_text(file);
    static const std::regex var("@([A-Z_]+)@");
    std::string out;
    auto last = text.cbegin();
    for (std::sregex_iterator it(text.begin(), text.end(), var), end; it != end; ++it) {
        const auto found = values.find((*it)[1].str());
        if (found == values.end())
            throw std::runtime_error("template " + file.string() + ": no value for " + it->str());
        out.append(last, (*it)[0].first);
        out += found->second;
        last = (*it)[0].second;
    }
    out.append(last, text.cend());
    return out;
}

void run_generate(const GenerateArgs &a) {
    const auto t0 = std::chrono::steady_clock::now();
    if (a.target.empty()) throw UsageError("give --target; " + valid_targets_text());
    const std::vector<std::string> targets = resolve_target(a.target);
    if (a.bits.empty() == a.model.empty())
        throw UsageError("give either --bits or --model (the kernels one model calls)");
    const Selection sel = a.model.empty() ? Selection{parse_bits_list(a.bits), {}, {}, {}}
                                          : model_selection(a.model);
    if (a.out.empty()) throw UsageError("give the output directory with --out DIR");
    const int parallel =
        a.jobs > 0 ? a.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
    const fs::path gen = find_generator(a);
    const Schedules sched = load_schedules(a.schedules);
    const std::vector<Kernel> kernels = kernel_list(sel, sched);

    const fs::path out = fs::absolute(a.out);
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out))
        throw std::runtime_error("--out '" + a.out + "': cannot create the directory" +
                                 (ec ? ": " + ec.message() : ""));
    const fs::path logs = out / "amq_generate_logs";
    fs::create_directories(logs, ec);
    if (ec) throw std::runtime_error("cannot create '" + logs.string() + "': " + ec.message());

    std::vector<std::string> kernel_targets;
    for (const std::string &t : targets) kernel_targets.push_back(t + "-no_runtime");
    const std::string emit = a.assembly ? "static_library,h,assembly" : "static_library,h";
    const size_t total = kernels.size() + 1;
    std::cerr << "amq generate: " << kernels.size() << " kernels + Halide runtime for "
              << join(targets, ",") << "\n  generator: " << gen.string()
              << "\n  schedules: " << sched.file << "\n";

    // ("host" cannot be compared without Halide: it resolves in the generator.)
    if (!sched.tuned_target.empty() && targets != std::vector<std::string>{"host"} &&
        sched.tuned_target != join(targets, ","))
        std::cerr << "amq: note: the schedules were tuned with target " << sched.tuned_target
                  << "; generating for " << join(targets, ",") << "\n";

    // The runtime first: it also makes Halide check the target string.
    Job runtime{"halide runtime",
                {gen.string(), "-r", "amq_halide_runtime", "-o", out.string(), "-e",
                 "static_library", "target=" + join(targets, ",")},
                logs / "amq_halide_runtime.log"};
    try {
        run_jobs({runtime}, 1, 0, total);
    } catch (const std::runtime_error &e) {
        const std::string log = read_text(runtime.log);
        if (log.find("Did not understand Halide target") != std::string::npos ||
            log.find("compatible runtime target") != std::string::npos) {
            fs::remove_all(logs, ec);
            throw UsageError("--target '" + a.target + "': Halide does not accept " +
                             join(targets, ",") + ":\n" + tail(log, 40) + "\n" +
                             valid_targets_text());
        }
        throw;
    }
    std::vector<Job> jobs;
    for (const Kernel &k : kernels) {
        std::vector<std::string> kt = kernel_targets;
        if (!k.features.empty())
            for (std::string &t : kt) t += "-" + k.features;
        Job j{k.name,
              {gen.string(), "-g", k.generator, "-f", "amq_" + k.name, "-n", "amq_" + k.name, "-o",
               out.string(), "-e", emit, "target=" + join(kt, ",")},
              logs / ("amq_" + k.name + ".log")};
        for (const auto &[key, value] : k.params) j.argv.push_back(key + "=" + value);
        jobs.push_back(std::move(j));
    }
    run_jobs(jobs, parallel, 1, total);

    // The library suffix: .a, or .lib for Windows targets.
    std::string suffix;
    for (const char *ext : {".a", ".lib"})
        if (fs::is_regular_file(out / (std::string("amq_halide_runtime") + ext))) suffix = ext;
    if (suffix.empty())
        throw std::runtime_error("amq_generators wrote no library amq_halide_runtime.a in " +
                                 out.string());
    for (const Kernel &k : kernels)
        if (!fs::is_regular_file(out / ("amq_" + k.name + suffix)))
            throw std::runtime_error("amq_generators wrote no library amq_" + k.name + suffix +
                                     " in " + out.string());

    // The Halide runtime headers and amq/weight_layout.h (the strides of the weight
    // layouts), so that DIR alone is enough to call the kernels.
    const std::vector<fs::path> halide_dirs = {exe_dir() / ".." / "include" / "amq" / "halide",
                                               fs::path(AMQ_HALIDE_INCLUDE_DIR)};
    if (!copy_headers(halide_dirs, {"HalideRuntime.h", "HalideBuffer.h"}, out))
        std::cerr << "amq: note: HalideRuntime.h and HalideBuffer.h not found (looked in"
                  << list_paths(halide_dirs)
                  << "); add the Halide 14 include directory to call the kernels\n";
    const std::vector<fs::path> amq_dirs = {exe_dir() / ".." / "include" / "amq",
                                            fs::path(AMQ_QUANTIZE_INCLUDE_DIR) / "amq"};
    if (!copy_headers(amq_dirs, {"weight_layout.h"}, out / "amq"))
        std::cerr << "amq: note: amq/weight_layout.h not found (looked in" << list_paths(amq_dirs)
                  << ")\n";

    std::vector<std::string> bit_names, names, includes;
    for (const spec::Bits &b : sel.bits) bit_names.push_back(bits_str(b.w, b.a));
    for (const Kernel &k : kernels) {
        names.push_back(k.name);
        std::vector<std::string> kv;
        for (const auto &[key, value] : k.params) kv.push_back(key + "=" + value);
        includes.push_back("#include \"amq_" + k.name + ".h\"  // " + k.generator + " " +
                           join(kv, " "));
    }
    const std::string arch = arch_of(targets.front());
    std::map<std::string, std::string> values = {
        {"AMQ_VERSION", AMQ_VERSION},
        {"TARGET", join(targets, ",")},
        {"FIRST_TARGET", targets.front()},
        {"BITS", join(bit_names, ",")},
        {"BITS_LIST", join(bit_names, ";")},
        {"MODEL_NOTE", a.model.empty() ? "" : ", the kernels " + a.model + " calls"},
        {"SCHEDULES", sched.file},
        {"KERNELS", join(names, ";")},
        {"LAYOUT", knob(sched.knobs.at("bgemv"), "layout", "")},
        {"TILE", knob(sched.knobs.at("bgemv"), "tile", "")},
        {"BGEMM_ACCUMULATORS", knob(sched.knobs.at("bgemm"), "accumulators", "")},
        {"BGEMM_MAX_BATCH_TILE", knob(sched.knobs.at("bgemm"), "max_batch_tile", "")},
        {"FLOAT_PANEL", knob(sched.knobs.at("f32_gemv"), "panel", "")},
        {"ARCH_REGEX", arch == "x86"   ? "^(x86_64|AMD64|amd64|i[3-6]86|x86)$"
                       : arch == "arm" ? "^(aarch64|arm64|ARM64|arm.*)$"
                                       : ""},
        {"LIB_SUFFIX", suffix},
        {"INCLUDES", join(includes, "\n")}};
    write_file(out / "amq_kernels.h", configure_template("amq_kernels.h.in", values));
    write_file(out / "amqKernels.cmake", configure_template("amqKernels.cmake.in", values));

    // manifest.json: per kernel its pipeline, shape, bits, knobs and target.
    nlohmann::ordered_json j;
    j["format"] = "amq-generated-kernels";
    j["amq_version"] = AMQ_VERSION;
    j["target"] = join(targets, ",");
    j["bits"] = bit_names;
    j["model"] = a.model.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(a.model);
    j["schedules"] = sched.file;
    j["layout"] = values["LAYOUT"];
    j["tile"] = std::stoi(values["TILE"]);
    j["runtime"] = "amq_halide_runtime" + suffix;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    const std::set<std::string> instance_params = {"k_w", "k_a", "k", "iters", "rows", "cols"};
    for (const Kernel &k : kernels) {
        nlohmann::ordered_json kj, knobs = nlohmann::ordered_json::object();
        kj["name"] = k.name;
        kj["pipeline"] = k.pipeline;
        kj["shape"] = k.rows ? nlohmann::ordered_json({k.rows, k.cols}) : nlohmann::ordered_json("any");
        kj["bits"] = k.bits.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(k.bits);
        nlohmann::ordered_json per_isa = nullptr;
        for (const auto &[key, value] : k.params)
            if (key == "isa_knobs")
                per_isa = isa_knobs_json(value);
            else if (!instance_params.count(key))
                knobs[key] = knob_json(value);
        kj["knobs"] = knobs;
        // The knobs a lower ISA variant sets apart from these ({"avx2": {...}}), or null.
        kj["isa_knobs"] = per_isa;
        kj["target"] = join(targets, ",");
        kj["function"] = "amq_" + k.name;
        kj["generator"] = k.generator;
        kj["library"] = "amq_" + k.name + suffix;
        kj["header"] = "amq_" + k.name + ".h";
        list.push_back(kj);
    }
    j["kernels"] = list;
    write_file(out / "manifest.json", j.dump(2) + "\n");
    fs::remove_all(logs, ec);

    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "wrote %zu kernels and the Halide runtime for %s into %s in %.1f s\n"
        "  CMake: include(%s/amqKernels.cmake), link amq::generated_kernels\n"
        "  C/C++: #include \"amq_kernels.h\" (-I %s), link the amq_*%s files, then "
        "amq_halide_runtime%s, -lpthread -ldl\n",
        kernels.size(), join(targets, ",").c_str(), out.string().c_str(), secs,
        out.string().c_str(), out.string().c_str(), suffix.c_str(), suffix.c_str());
}

}  // namespace

void add_generate_command(CLI::App &app) {
    auto a = std::make_shared<GenerateArgs>();
    auto *cmd = app.add_subcommand(
        "generate",
        "Compile the kernels ahead of time for a target CPU (static libraries, headers, a "
        "Halide runtime and a CMake file) to link into an application");
    cmd->add_option("--target", a->target,
                    "host, x86-64-avx512, x86-64-avx2, x86-64-sse41, x86-64-multi, aarch64, "
                    "aarch64-dotprod, or a Halide target string")
        ->required();
    cmd->add_option("--bits", a->bits, "Bit pairs, comma separated (e.g. W2A2,W3A3; the alias 2x2 works too), or all");
    cmd->add_option("--model", a->model,
                    "A quantized model (.amq): exactly the kernels it calls, the binary "
                    "products specialized to its shapes where the schedules have a tuned "
                    "variant (common knobs elsewhere)");
    cmd->add_option("--out", a->out, "Output directory (created if missing)")->required();
    cmd->add_option("--schedules", a->schedules,
                    "Schedules JSON (default: the schedules amq was built with, tuned for "
                    "the build machine's CPU if it had a tuned file); its knobs override "
                    "the defaults in schedules/manifest.json, knob by knob");
    cmd->add_option("--generator", a->generator,
                    "The amq_generators executable (default: beside amq)");
    cmd->add_option("-j,--jobs", a->jobs, "Generator processes at a time (default: all cores)")
        ->check(CLI::Range(1, 256));
    cmd->add_flag("--assembly", a->assembly, "Also write the assembly of each kernel (.s)");
    cmd->callback([a] { run_generate(*a); });
}

}  // namespace amq::tools
