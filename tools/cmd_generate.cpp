// amq generate: AOT kernels for a target CPU, to link into an application.
//
//   amq generate --target aarch64 --bits 2x2,3x3 --out kernels/
//
// Runs the amq_generators executable (installed beside amq, which links libHalide
// for amq tune only) once per kernel, with the schedule knobs of a schedules JSON
// file, and writes into --out: one static library and header per kernel
// (amq_<kernel>.a/.h), one shared Halide runtime (amq_halide_runtime.a), the Halide
// runtime headers, amq/weight_layout.h, amq_kernels.h (includes every kernel header,
// defines the layout), amqKernels.cmake (imported target amq::generated_kernels)
// and amq_kernels.json (what was built, with every knob). See docs/USING.md.
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

#include "commands.h"

extern char **environ;

namespace amq::tools {
namespace {

namespace fs = std::filesystem;
using Knobs = std::vector<std::pair<std::string, std::string>>;  // ordered key=value

struct GenerateArgs {
    std::string target, bits, schedules, out, generator;
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

// "2x2,3x3" (or "w2a2", or "all") -> sorted unique pairs.
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
                                 "' is not a bit pair; valid pairs are WxA with W (weight bits) "
                                 "and A (activation bits) each in 1..4 (1x1, 1x2, ... 4x4), "
                                 "comma separated, e.g. --bits 2x2,3x3, or --bits all");
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

fs::path default_schedules() {
    return first_existing(
        {(exe_dir() / ".." / "share" / "amq" / "schedules" / "defaults.json").lexically_normal(),
         fs::path(AMQ_SOURCE_SCHEDULES)});
}

// The schedules amq itself was built with (AMQ_SCHEDULES: tuned for the build
// machine's CPU, or the hand defaults), installed as share/amq/schedules/build.json.
// Kernels generated with them have the weight layout amq::runtime packs for.
fs::path build_schedules() {
    return first_existing(
        {(exe_dir() / ".." / "share" / "amq" / "schedules" / "build.json").lexically_normal(),
         fs::path(AMQ_BUILD_SCHEDULES)});
}

nlohmann::json read_schedules(const fs::path &file) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("schedules file '" + file.string() + "': cannot be read");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error &e) {
        throw std::runtime_error("schedules file '" + file.string() + "': not JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("pipelines") || !j["pipelines"].is_object())
        throw std::runtime_error("schedules file '" + file.string() +
                                 "': expected an object with a \"pipelines\" object "
                                 "(see schedules/defaults.json)");
    return j;
}

std::string knob_value(const fs::path &file, const std::string &pipeline, const std::string &key,
                       const nlohmann::json &v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    if (v.is_number()) return v.dump();
    throw std::runtime_error("schedules file '" + file.string() + "': pipelines." + pipeline + "." +
                             key + " is " + v.dump() +
                             ", expected a number, a string or a boolean");
}

const std::vector<std::string> kPipelines = {"bgemv", "quantize_act", "pack_bits", "f32_gemv",
                                             "bgemm", "lstm_cell",    "gru_cell"};

// Knobs per pipeline: the defaults, overlaid by --schedules or, without it, by the
// schedules amq was built with (a tuned file may hold only some pipelines or knobs).
struct Schedules {
    std::map<std::string, Knobs> knobs;
    std::vector<std::string> files;
    std::string tuned_target;  // "target" of a file written by amq tune, if any
};

Schedules load_schedules(const std::string &user_file) {
    Schedules s;
    const fs::path defaults = default_schedules();
    std::vector<std::pair<fs::path, nlohmann::json>> layers;
    if (!defaults.empty()) layers.push_back({defaults, read_schedules(defaults)["pipelines"]});
    const std::string overlay = user_file.empty() ? build_schedules().string() : user_file;
    if (!overlay.empty()) {
        if (!fs::is_regular_file(overlay))
            throw UsageError("--schedules '" + overlay + "': no such file");
        const fs::path user = fs::absolute(overlay);
        if (defaults.empty() || !fs::equivalent(user, defaults)) {
            const nlohmann::json j = read_schedules(user);
            layers.push_back({user, j["pipelines"]});
            if (j.contains("target") && j["target"].is_string())
                s.tuned_target = j["target"].get<std::string>();
        }
        for (const auto &item : layers.back().second.items())
            if (std::find(kPipelines.begin(), kPipelines.end(), item.key()) == kPipelines.end())
                throw std::runtime_error("schedules file '" + overlay + "': unknown pipeline '" +
                                         item.key() + "', expected some of " +
                                         join(kPipelines, ", "));
    }
    if (layers.empty())
        throw std::runtime_error(
            "cannot find schedules/defaults.json (looked beside amq in "
            "../share/amq/schedules/ and at " AMQ_SOURCE_SCHEDULES
            "); give a file with --schedules");
    for (const auto &[file, pipelines] : layers) {
        s.files.push_back(file.string());
        for (const auto &p : pipelines.items()) {
            if (!p.value().is_object())
                throw std::runtime_error("schedules file '" + file.string() + "': pipelines." +
                                         p.key() + " is not an object of knobs");
            Knobs &k = s.knobs[p.key()];
            for (const auto &kv : p.value().items()) {
                const std::string v = knob_value(file, p.key(), kv.key(), kv.value());
                auto it = std::find_if(k.begin(), k.end(),
                                       [&](const auto &e) { return e.first == kv.key(); });
                if (it != k.end())
                    it->second = v;
                else
                    k.push_back({kv.key(), v});
            }
        }
    }
    return s;
}

std::string knob(const Knobs &k, const std::string &key, const std::string &fallback) {
    for (const auto &[name, value] : k)
        if (name == key) return value;
    return fallback;
}

// One generator run: kernel amq_<name> from generator <gen> with params.
struct Kernel {
    std::string name, generator;
    Knobs params;
};

// The kernels for the bit pairs, with the knobs as the amq build passes them
// (generators/CMakeLists.txt): pack_bits and bgemm share bgemv's layout and tile.
std::vector<Kernel> kernel_list(const std::vector<spec::Bits> &bits, const Schedules &s) {
    auto knobs = [&](const std::string &p) {
        auto it = s.knobs.find(p);
        return it == s.knobs.end() ? Knobs{} : it->second;
    };
    auto with = [](Knobs first, const Knobs &rest) {
        for (const auto &kv : rest) {
            auto it = std::find_if(first.begin(), first.end(),
                                   [&](const auto &e) { return e.first == kv.first; });
            if (it == first.end()) first.push_back(kv);  // explicit params win
        }
        return first;
    };
    const Knobs bgemv = knobs("bgemv");
    const std::string layout = knob(bgemv, "layout", "tiled"), tile = knob(bgemv, "tile", "8");
    std::vector<Kernel> out;
    out.push_back({"pack_bits_plane", "pack_bits",
                   with({{"layout", "plane_major"}, {"tile", "1"}}, knobs("pack_bits"))});
    out.push_back({"pack_bits_kernel", "pack_bits",
                   with({{"layout", layout}, {"tile", tile}}, knobs("pack_bits"))});
    std::set<int> act_bits;
    for (const spec::Bits &b : bits) act_bits.insert(b.a);
    for (int a : act_bits)
        for (int t = 0; t <= 3; ++t)
            out.push_back({"quantize_act_a" + std::to_string(a) + "_t" + std::to_string(t),
                           "quantize_act",
                           with({{"k", std::to_string(a)}, {"iters", std::to_string(t)}},
                                knobs("quantize_act"))});
    for (const spec::Bits &b : bits) {
        const std::string wa = "w" + std::to_string(b.w) + "a" + std::to_string(b.a);
        const Knobs kk = {{"k_w", std::to_string(b.w)}, {"k_a", std::to_string(b.a)}};
        out.push_back({"bgemv_" + wa, "bgemv", with(kk, bgemv)});
        out.push_back({"bgemm_" + wa, "bgemm",
                       with(with(kk, {{"layout", layout}, {"tile", tile}}), knobs("bgemm"))});
    }
    out.push_back({"f32_gemv", "f32_gemv", knobs("f32_gemv")});
    out.push_back({"lstm_cell", "lstm_cell", knobs("lstm_cell")});
    out.push_back({"gru_cell", "gru_cell", knobs("gru_cell")});
    return out;
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

std::string cmake_quote(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\' || c == '$') out += '\\';
        out += c;
    }
    return out + "\"";
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

void run_generate(const GenerateArgs &a) {
    const auto t0 = std::chrono::steady_clock::now();
    if (a.target.empty()) throw UsageError("give --target; " + valid_targets_text());
    const std::vector<std::string> targets = resolve_target(a.target);
    const std::vector<spec::Bits> bits = parse_bits_list(a.bits);
    if (a.out.empty()) throw UsageError("give the output directory with --out DIR");
    const int parallel =
        a.jobs > 0 ? a.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
    const fs::path gen = find_generator(a);
    const Schedules sched = load_schedules(a.schedules);
    const std::vector<Kernel> kernels = kernel_list(bits, sched);

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
              << "\n  schedules: " << join(sched.files, " overlaid by ") << "\n";

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
        Job j{k.name,
              {gen.string(), "-g", k.generator, "-f", "amq_" + k.name, "-n", "amq_" + k.name, "-o",
               out.string(), "-e", emit, "target=" + join(kernel_targets, ",")},
              logs / ("amq_" + k.name + ".log")};
        for (const auto &[key, value] : k.params) j.argv.push_back(key + "=" + value);
        jobs.push_back(std::move(j));
    }
    run_jobs(jobs, parallel, 1, total);

    // The library file of each kernel: .a, or .lib for Windows targets.
    auto library = [&](const std::string &base) {
        for (const char *ext : {".a", ".lib"})
            if (fs::is_regular_file(out / (base + ext))) return base + ext;
        throw std::runtime_error("amq_generators wrote no library " + base + ".a in " +
                                 out.string());
    };
    const std::string runtime_lib = library("amq_halide_runtime");

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

    const Knobs bgemv = sched.knobs.count("bgemv") ? sched.knobs.at("bgemv") : Knobs{};
    const Knobs bgemm = sched.knobs.count("bgemm") ? sched.knobs.at("bgemm") : Knobs{};
    const std::string layout = knob(bgemv, "layout", "tiled"), tile = knob(bgemv, "tile", "8");
    const std::string acc = knob(bgemm, "accumulators", "24"),
                      max_bt = knob(bgemm, "max_batch_tile", "6");
    std::vector<std::string> bit_names;
    for (const spec::Bits &b : bits) bit_names.push_back(bits_str(b.w, b.a));

    // amq_kernels.h
    std::string h = "// Written by `amq generate` (amq " AMQ_VERSION "): do not edit.\n";
    h += "// target: " + join(targets, ",") + "\n// bits: " + join(bit_names, ",") +
         "\n// schedules: " + join(sched.files, " overlaid by ") + "\n";
    h += "// Weight layout of bgemv/bgemm/pack_bits_kernel: " + layout + ", tile " + tile +
         " (amq/weight_layout.h).\n#pragma once\n\n";
    h += "#define AMQ_GENERATED_TARGET \"" + join(targets, ",") + "\"\n";
    h += "#define AMQ_GENERATED_LAYOUT \"" + layout + "\"\n";
    h += "#define AMQ_GENERATED_TILE " + tile + "\n";
    h += "#define AMQ_GENERATED_BGEMM_ACCUMULATORS " + acc + "\n";
    h += "#define AMQ_GENERATED_BGEMM_MAX_BATCH_TILE " + max_bt + "\n\n";
    for (const Kernel &k : kernels) {
        std::vector<std::string> kv;
        for (const auto &[key, value] : k.params) kv.push_back(key + "=" + value);
        h += "#include \"amq_" + k.name + ".h\"  // " + k.generator + " " + join(kv, " ") + "\n";
    }
    write_file(out / "amq_kernels.h", h);

    // amqKernels.cmake
    std::string c = "# Written by `amq generate` (amq " AMQ_VERSION "): do not edit.\n";
    c += "# Kernels for " + join(targets, ",") + ", bits " + join(bit_names, ",") + ".\n";
    c += "#   include(<this directory>/amqKernels.cmake)\n"
         "#   target_link_libraries(app PRIVATE amq::generated_kernels)\n"
         "# amq::generated_<kernel> is each kernel alone; all of them share\n"
         "# amq::generated_halide_runtime.\n";
    c += "get_filename_component(_amq_gen_dir \"${CMAKE_CURRENT_LIST_FILE}\" DIRECTORY)\n";
    c += "set(AMQ_GENERATED_DIR \"${_amq_gen_dir}\")\n";
    c += "set(AMQ_GENERATED_TARGET " + cmake_quote(join(targets, ",")) + ")\n";
    c += "set(AMQ_GENERATED_BITS " + cmake_quote(join(bit_names, ";")) + ")\n";
    std::vector<std::string> names;
    for (const Kernel &k : kernels) names.push_back(k.name);
    c += "set(AMQ_GENERATED_KERNELS " + cmake_quote(join(names, ";")) + ")\n";
    c += "set(AMQ_GENERATED_LAYOUT " + cmake_quote(layout) + ")\n";
    c += "set(AMQ_GENERATED_TILE " + tile + ")\n";
    c += "set(AMQ_GENERATED_BGEMM_ACCUMULATORS " + acc + ")\n";
    c += "set(AMQ_GENERATED_BGEMM_MAX_BATCH_TILE " + max_bt + ")\n";
    // The targets are global: one generated directory per CMake build.
    c += "get_property(_amq_loaded GLOBAL PROPERTY AMQ_GENERATED_KERNELS_DIR)\n"
         "if(_amq_loaded)\n"
         "  if(NOT _amq_loaded STREQUAL _amq_gen_dir)\n"
         "    message(FATAL_ERROR \"amq: kernels from ${_amq_loaded} are loaded already; "
         "one `amq generate` directory per build (not also ${_amq_gen_dir})\")\n"
         "  endif()\n  return()\nendif()\n"
         "set_property(GLOBAL PROPERTY AMQ_GENERATED_KERNELS_DIR \"${_amq_gen_dir}\")\n";
    const std::string arch = arch_of(targets.front());
    if (arch == "x86" || arch == "arm") {
        const std::string re =
            arch == "x86" ? "^(x86_64|AMD64|amd64|i[3-6]86|x86)$" : "^(aarch64|arm64|ARM64|arm.*)$";
        c += "if(CMAKE_SYSTEM_PROCESSOR MATCHES \"^(x86_64|AMD64|amd64|i[3-6]86|x86|aarch64|"
             "arm64|ARM64|arm.*)$\" AND\n   NOT CMAKE_SYSTEM_PROCESSOR MATCHES \"" +
             re + "\")\n  message(FATAL_ERROR \"amq: the kernels in ${_amq_gen_dir} are for " +
             targets.front() +
             " but this build targets ${CMAKE_SYSTEM_PROCESSOR}; use a cross toolchain for "
             "that CPU or generate for this one\")\nendif()\n";
    }
    c += "find_package(Threads REQUIRED)\n";
    c += "add_library(amq::generated_halide_runtime STATIC IMPORTED GLOBAL)\n";
    c += "set_target_properties(amq::generated_halide_runtime PROPERTIES\n"
         "  IMPORTED_LOCATION \"${_amq_gen_dir}/" +
         runtime_lib +
         "\"\n  INTERFACE_INCLUDE_DIRECTORIES \"${_amq_gen_dir}\"\n"
         "  INTERFACE_LINK_LIBRARIES \"Threads::Threads;${CMAKE_DL_LIBS}\")\n";
    std::string all;
    for (const Kernel &k : kernels) {
        const std::string t = "amq::generated_" + k.name;
        c += "add_library(" + t + " STATIC IMPORTED GLOBAL)\n";
        c += "set_target_properties(" + t + " PROPERTIES\n  IMPORTED_LOCATION \"${_amq_gen_dir}/" +
             library("amq_" + k.name) +
             "\"\n  INTERFACE_INCLUDE_DIRECTORIES \"${_amq_gen_dir}\"\n"
             "  INTERFACE_LINK_LIBRARIES amq::generated_halide_runtime)\n";
        all += t + ";";
    }
    c += "add_library(amq::generated_kernels INTERFACE IMPORTED GLOBAL)\n";
    c += "set_target_properties(amq::generated_kernels PROPERTIES\n"
         "  INTERFACE_INCLUDE_DIRECTORIES \"${_amq_gen_dir}\"\n"
         "  INTERFACE_LINK_LIBRARIES \"" +
         all + "amq::generated_halide_runtime\")\n";
    c += "unset(_amq_gen_dir)\n";
    write_file(out / "amqKernels.cmake", c);

    // amq_kernels.json: what was built, for tools.
    nlohmann::ordered_json j;
    j["format"] = "amq-generated-kernels";
    j["amq_version"] = AMQ_VERSION;
    j["target"] = a.target;
    j["halide_targets"] = targets;
    j["bits"] = bit_names;
    j["schedules"] = sched.files;
    j["layout"] = layout;
    j["tile"] = std::stoi(tile);
    j["runtime"] = runtime_lib;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const Kernel &k : kernels) {
        nlohmann::ordered_json kj;
        kj["name"] = k.name;
        kj["function"] = "amq_" + k.name;
        kj["generator"] = k.generator;
        kj["library"] = library("amq_" + k.name);
        kj["header"] = "amq_" + k.name + ".h";
        nlohmann::ordered_json params = nlohmann::ordered_json::object();
        for (const auto &[key, value] : k.params) params[key] = value;
        kj["params"] = params;
        list.push_back(kj);
    }
    j["kernels"] = list;
    write_file(out / "amq_kernels.json", j.dump(2) + "\n");
    fs::remove_all(logs, ec);

    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "wrote %zu kernels and the Halide runtime for %s into %s in %.1f s\n"
        "  CMake: include(%s/amqKernels.cmake), link amq::generated_kernels\n"
        "  C/C++: #include \"amq_kernels.h\" (-I %s), link the amq_*.a files, then %s, "
        "-lpthread -ldl\n",
        kernels.size(), join(targets, ",").c_str(), out.string().c_str(), secs,
        out.string().c_str(), out.string().c_str(), runtime_lib.c_str());
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
    cmd->add_option("--bits", a->bits, "Bit pairs WxA, comma separated (e.g. 2x2,3x3), or all")
        ->required();
    cmd->add_option("--out", a->out, "Output directory (created if missing)")->required();
    cmd->add_option("--schedules", a->schedules,
                    "Schedules JSON (default: the schedules amq was built with, tuned for "
                    "the build machine's CPU if it had a tuned file); its knobs override "
                    "schedules/defaults.json pipeline by pipeline");
    cmd->add_option("--generator", a->generator,
                    "The amq_generators executable (default: beside amq)");
    cmd->add_option("-j,--jobs", a->jobs, "Generator processes at a time (default: all cores)")
        ->check(CLI::Range(1, 256));
    cmd->add_flag("--assembly", a->assembly, "Also write the assembly of each kernel (.s)");
    cmd->callback([a] { run_generate(*a); });
}

}  // namespace amq::tools
