// amq tune --steps: time RNN steps on the fused step kernels and on the separate
// ones (bench/rnn_measure.h, measure_step_choice), per cell, bit pair, hidden
// size, batch and call, and write both times to the schedules file's "steps";
// the build links the choice (cmake/amqManifest.cmake, amq::step_choice).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>
#include <tuple>

#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/records.h"
#include "amq/autotune/schedules_file.h"
#include "amq/kernels.h"
#include "amq/thread_pool.h"
#include "commands.h"
#include "rnn_measure.h"

namespace amq::tools {
namespace {

std::vector<std::string> split(const std::string &text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(item);
    return out;
}

// "64,128,256" -> {64, 128, 256}, each in lo..hi; UsageError naming the option.
std::vector<size_t> parse_sizes(const std::string &option, const std::string &text, size_t lo,
                                size_t hi) {
    std::vector<size_t> out;
    for (const std::string &item : split(text)) {
        char *end = nullptr;
        const unsigned long long v = std::strtoull(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || item.find_first_not_of("0123456789") != std::string::npos ||
            v < lo || v > hi)
            throw UsageError(option + " '" + text + "': expected a comma-separated list of " +
                             "integers in " + std::to_string(lo) + ".." + std::to_string(hi));
        out.push_back(size_t(v));
    }
    if (out.empty()) throw UsageError(option + " is empty");
    return out;
}

// The problems of one layer shape: cell, bits, hidden, input, batch.
struct StepProblem {
    Arch arch;
    spec::Bits bits;
    size_t hidden, input, batch;
    auto key() const { return std::make_tuple(int(arch), bits.w, bits.a, hidden, batch); }
};

// The step problems of a model: every layer direction whose recurrent step a
// fused kernel can run (quantized, alternating activations with the built
// cycles, no projection), once per cell, bits, hidden and batch.
std::vector<StepProblem> model_step_problems(const ModelFile &model, size_t batch) {
    std::vector<StepProblem> out;
    const RnnShape &s = model.shape;
    if (s.proj_size) return out;
    for (const MatrixInfo &mi : weight_matrices(s, false)) {
        if (mi.role != MatrixRole::recurrent) continue;
        const auto q = model.quant.find(mi.name);
        if (q == model.quant.end()) continue;
        const MatrixBits b = model.bits_of(mi.name);
        if (b.act_method != "alternating") continue;
        if (!fused_step_built(q->second.k, b.k_a, model.act_iters, batch)) continue;
        const size_t input = mi.layer == 0 ? s.input_size : s.output_size();
        StepProblem p{s.arch, {q->second.k, b.k_a}, s.hidden_size, input, batch};
        bool seen = false;
        for (const auto &o : out) seen = seen || o.key() == p.key();
        if (!seen) out.push_back(p);
    }
    return out;
}

std::string fixed2(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

}  // namespace

void run_tune_steps(const StepTuneArgs &a, const ModelFile *model) {
    check_range("--rounds", a.rounds, 1, 1000);
    check_range("--repeats", a.repeats, 1, 100);
    check_range("--threads", a.threads, 1, 1024);
    check_range("--batch", (long long)a.batch, 1, 4096);
    std::vector<StepProblem> problems;
    if (model) {
        if (!a.cells.empty() || !a.hidden.empty() || !a.bits.empty() || a.input)
            throw UsageError("--cell, --hidden, --bits and --input come from the model with "
                             "--model: leave them out");
        problems = model_step_problems(*model, a.batch);
        if (problems.empty()) {
            std::cerr << "amq tune: no layer of the model runs on a fused step kernel at batch "
                      << a.batch << " (quantized, alternating activations with "
                      << "the cycles the kernels are built for, no projection): nothing to time\n";
            return;
        }
    } else {
        std::vector<Arch> archs;
        for (const std::string &c : split(a.cells.empty() ? "lstm,gru" : a.cells)) {
            if (c == "lstm") archs.push_back(Arch::lstm);
            else if (c == "gru") archs.push_back(Arch::gru);
            else throw UsageError("--cell '" + a.cells + "': expected lstm, gru or lstm,gru");
        }
        const std::vector<size_t> hidden =
            parse_sizes("--hidden", a.hidden.empty() ? "64,128,256,512,1024" : a.hidden, 1, 65536);
        std::vector<spec::Bits> bits;
        if (a.bits.empty()) {  // every pair with a fused step built at this batch
            for (int w = 1; w <= 4; ++w)
                for (int k = 1; k <= 4; ++k)
                    if (fused_step_built(w, k, 2, a.batch)) bits.push_back({w, k});
            if (bits.empty())
                throw UsageError("this build has no fused step kernel for batch " +
                                 std::to_string(a.batch) + ": nothing to choose");
        } else {
            for (const std::string &b : split(a.bits)) {
                const spec::Bits pair = parse_bits("--bits", b);
                if (!fused_step_built(pair.w, pair.a, 2, a.batch))
                    throw UsageError("--bits " + b + ": this build has no fused step kernel for " +
                                     bits_str(pair.w, pair.a) + " at batch " +
                                     std::to_string(a.batch) + " (see amq info --kernels)");
                bits.push_back(pair);
            }
        }
        for (Arch arch : archs)
            for (const spec::Bits &b : bits)
                for (size_t h : hidden) problems.push_back({arch, b, h, a.input ? a.input : h, a.batch});
    }

    const tune::CpuIdentity cpu = tune::detect_cpu();
    const std::string path = !a.schedules.empty()
                                 ? a.schedules
                                 : std::string(AMQ_SCHEDULES_DIR) + "/" + tune::schedules_file_name(cpu);
    std::cerr << "amq tune: timing " << problems.size()
              << " step problem(s) on the fused and the separate kernels, " << a.repeats
              << " x " << a.rounds << " rounds each, " << a.threads << " thread(s), for " << cpu.id << "\n";
    std::vector<tune::TunedStep> steps;
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (size_t i = 0; i < problems.size(); ++i) {
        const StepProblem &p = problems[i];
        bench::RnnBenchConfig cfg;
        cfg.arch = p.arch;
        cfg.hidden_size = p.hidden;
        cfg.input_size = p.input;
        cfg.bits = p.bits;
        cfg.batch = int(p.batch);
        cfg.threads = a.threads;
        cfg.steps = a.steps;
        // Each repeat on new candidates (new weights and buffers, so new physical
        // pages: a layout's cache conflicts differ from one allocation to the
        // next by up to a third at these sizes); the median of the repeats.
        std::vector<bench::StepChoiceTiming> reps;
        for (int r = 0; r < a.repeats; ++r)
            reps.push_back(bench::measure_step_choice(cfg, a.rounds));
        auto median = [&](double bench::StepChoiceTiming::*field) {
            std::vector<double> v;
            for (const auto &t : reps) v.push_back(t.*field);
            std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
            return v[v.size() / 2];
        };
        bench::StepChoiceTiming t = reps.front();
        for (auto f : {&bench::StepChoiceTiming::run_fused_us, &bench::StepChoiceTiming::run_separate_us,
                       &bench::StepChoiceTiming::step_fused_us,
                       &bench::StepChoiceTiming::step_separate_us})
            t.*f = median(f);
        const std::string cell = p.arch == Arch::lstm ? "lstm" : "gru",
                          bits = bits_str(p.bits.w, p.bits.a);
        auto add = [&](const char *call, double fused, double separate) {
            steps.push_back({cell, bits, p.hidden, p.batch, call, fused, separate, ""});
            const bool sep = tune::step_separate_wins(fused, separate);
            rows.push_back({{"cell", cell}, {"bits", bits}, {"hidden", p.hidden},
                            {"input", p.input}, {"batch", p.batch}, {"call", call},
                            {"fused_us", fused}, {"separate_us", separate},
                            {"choice", sep ? "separate" : "fused"}});
            std::cerr << "amq tune: [" << (i + 1) << "/" << problems.size() << "] " << cell << " "
                      << bits << " hidden " << p.hidden << " batch " << p.batch << " " << call
                      << "(): fused " << fixed2(fused) << " us, separate " << fixed2(separate)
                      << " us per step -> " << (sep ? "separate" : "fused") << "\n";
        };
        if (t.has_run) add("run", t.run_fused_us, t.run_separate_us);
        if (t.has_step) add("step", t.step_fused_us, t.step_separate_us);
    }
    tune::update_step_choices(path, cpu, steps);
    if (a.json) {
        nlohmann::ordered_json j;
        j["cpu"] = cpu.id;
        j["threads"] = a.threads;
        j["rounds"] = a.rounds;
        j["repeats"] = a.repeats;
        j["steps_per_sequence"] = a.steps;
        j["problems"] = rows;
        j["schedules"] = path;
        std::cout << j.dump(2) << std::endl;
        return;
    }
    std::cout << "| cell | bits | hidden | batch | call | fused us/step | separate us/step | "
                 "choice |\n| --- | --- | ---: | ---: | --- | ---: | ---: | --- |\n";
    for (const auto &r : rows)
        std::cout << "| " << r["cell"].get<std::string>() << " | " << r["bits"].get<std::string>()
                  << " | " << r["hidden"] << " | " << r["batch"] << " | "
                  << r["call"].get<std::string>() << "() | " << fixed2(r["fused_us"]) << " | "
                  << fixed2(r["separate_us"]) << " | " << r["choice"].get<std::string>() << " |\n";
    std::cout << "schedules: " << path
              << "\nThe build links the choice: reconfigure and rebuild (cmake --build) to use it.\n";
}

}  // namespace amq::tools
