// amq bench gemv: amq (activation quantization + bgemv) against bgemv alone, the
// Halide float GEMV and OpenBLAS sgemv, one shape or the whole spec (--all), as a
// markdown table or JSON.
// amq bench rnn: the LSTM/GRU runner on a random quantized layer against the same
// layer unquantized on amq's f32 kernels and on oneDNN (f32 and int8; the GRU's
// int8 figure is oneDNN's plain GRU, "onednn_int8_cell").
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "commands.h"
#include "gemv_measure.h"
#include "rnn_measure.h"

namespace amq::tools {
namespace {

struct GemvOptions {
    std::string shape, bits;
    bool all = false, json = false;
    int threads = 1, rounds = 15, iters = 2;
};

double ratio(double a, double b) { return b > 0 ? a / b : 0; }
// Rounded to `digits` decimals (so that the JSON shows 0.942, not 0.94200000000000006).
double round_to(double v, int digits) {
    double p = std::pow(10.0, digits);
    return std::round(v * p) / p;
}

// A time (or rate) in microseconds to 3 decimals, null where it was not
// measured (0).
nlohmann::ordered_json measured_or_null(double us) {
    return us > 0 ? nlohmann::ordered_json(round_to(us, 3)) : nullptr;
}

// num / den to 3 decimals, null where either was not measured (0).
nlohmann::ordered_json ratio_or_null(double num, double den) {
    return num > 0 && den > 0 ? nlohmann::ordered_json(round_to(num / den, 3)) : nullptr;
}

// The bgemv kernel the product ran: the per-problem variant a matrix of this
// shape and bits is bound to, or the common kernel.
nlohmann::ordered_json variant_json(const bench::GemvResult &r) {
    if (const KernelInfo *v = BinaryMatrix::variant_for(r.k_w, r.k_a, r.rows, r.cols))
        return {{"name", v->name},
                {"shape", {v->rows, v->cols}},
                {"knobs", nlohmann::ordered_json::parse(v->knobs)},
                {"tuned_us", v->tuned_us},
                {"common_us", v->common_us}};
    const std::string common = "bgemv_w" + std::to_string(r.k_w) + "a" + std::to_string(r.k_a);
    for (const KernelInfo &k : linked_kernels())
        if (k.name == common)
            return {{"name", "common"}, {"shape", "any"}, {"knobs", nlohmann::ordered_json::parse(k.knobs)}};
    return {{"name", "common"}, {"shape", "any"}};
}

nlohmann::ordered_json to_json(const bench::GemvResult &r) {
    double compression = ratio(double(r.f32_weight_bytes), double(r.weight_bytes));
    return {
        {"shape", shape_str(r.rows, r.cols)},
        {"rows", r.rows},
        {"cols", r.cols},
        {"bits", bits_str(r.k_w, r.k_a)},
        {"k_w", r.k_w},
        {"k_a", r.k_a},
        {"act_iters", r.iters},
        {"threads", r.threads},
        {"isa", r.isa},
        {"layout", r.layout},
        {"variant", variant_json(r)},
        {"amq_us", round_to(r.amq_us, 3)},
        {"amq_gemv_only_us", round_to(r.amq_gemv_only_us, 3)},
        // A per-problem variant ran: the common kernel on the same weights, same rounds.
        {"common_gemv_only_us", measured_or_null(r.common_gemv_only_us)},
        {"variant_speedup", ratio_or_null(r.common_gemv_only_us, r.amq_gemv_only_us)},
        {"quantize_act_us", round_to(r.quantize_act_us, 3)},
        {"f32_halide_us", round_to(r.f32_halide_us, 3)},
        {"sgemv_us", round_to(r.sgemv_us, 3)},
        {"floor_us", measured_or_null(r.floor_us)},
        {"amq_vs_floor", r.amq_vs_floor > 0 ? nlohmann::ordered_json(round_to(r.amq_vs_floor, 3))
                                            : nullptr},
        {"stream_groups_us", measured_or_null(r.stream_groups_us)},
        {"gemv_only_vs_stream_groups", ratio_or_null(r.amq_gemv_only_us, r.stream_groups_us)},
        {"speedup_vs_sgemv", round_to(ratio(r.sgemv_us, r.amq_us), 3)},
        {"speedup_gemv_only_vs_sgemv", round_to(ratio(r.sgemv_us, r.amq_gemv_only_us), 3)},
        {"speedup_vs_f32_halide", round_to(ratio(r.f32_halide_us, r.amq_us), 3)},
        {"amq_gemv_only_1thread_us", round_to(r.amq_gemv_only_1thread_us, 3)},
        {"threads_speedup",
         r.threads > 1 ? round_to(ratio(r.amq_gemv_only_1thread_us, r.amq_gemv_only_us), 3) : 1.0},
        {"rounds", r.rounds},
        {"spread", round_to(r.amq_spread, 4)},
        {"weight_bytes", r.weight_bytes},
        {"f32_weight_bytes", r.f32_weight_bytes},
        {"compression", round_to(compression, 3)}};
}

void print_table_header() {
    std::cout << "| shape | bits | threads | amq us | gemv only us | sgemv us | f32 halide us "
                 "| speedup vs sgemv |\n"
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
}

void print_table_row(const nlohmann::ordered_json &j) {
    auto num = [](const nlohmann::ordered_json &v, int digits) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
        return std::string(buf);
    };
    std::cout << "| " << j["shape"].get<std::string>() << " | " << j["bits"].get<std::string>()
              << " | " << j["threads"] << " | " << num(j["amq_us"], 2) << " | "
              << num(j["amq_gemv_only_us"], 2) << " | " << num(j["sgemv_us"], 2) << " | "
              << num(j["f32_halide_us"], 2) << " | " << num(j["speedup_vs_sgemv"], 2) << "x |"
              << std::endl;
}

void run_gemv(const GemvOptions &o) {
    check_range("--threads", o.threads, 1, 4096);
    check_range("--rounds", o.rounds, 1, 100000);
    check_range("--iters", o.iters, 0, 3);
    std::vector<std::pair<spec::Shape, spec::Bits>> cases;
    if (o.all) {
        for (const auto &s : spec::bench_shapes)
            for (const auto &b : spec::bench_bits) cases.push_back({s, b});
    } else {
        if (o.shape.empty() || o.bits.empty())
            throw UsageError("bench gemv: give --shape ROWSxCOLS and --bits W<w>A<a>, or --all");
        cases.push_back({parse_shape("--shape", o.shape), parse_bits("--bits", o.bits)});
    }
    auto results = nlohmann::ordered_json::array();
    if (!o.json) print_table_header();
    for (size_t i = 0; i < cases.size(); ++i) {
        const auto &[s, b] = cases[i];
        if (o.all)
            std::cerr << "[" << i + 1 << "/" << cases.size() << "] " << shape_str(s.rows, s.cols)
                      << " W" << b.w << "A" << b.a << " ..." << std::endl;
        auto j = to_json(bench::measure_gemv(s.rows, s.cols, b, o.threads, o.rounds, 2.0, o.iters));
        if (!o.json) print_table_row(j);
        results.push_back(std::move(j));
    }
    if (o.json) std::cout << (o.all ? results : results[0]).dump(2) << std::endl;
}

struct RnnOptions {
    std::string arch, bits = "W2A2";
    long long hidden = 0, input = 0;
    bool input_given = false, json = false, no_avx2_onednn = false;
    int threads = 1, steps = 100, rounds = 7, batch = 1;
};

// Largest --hidden / --input: the f32 copies of a 8192 x 8192 layer already take
// about 4 GB.
constexpr long long kMaxWidth = 8192;

nlohmann::ordered_json us_or_null(const bench::RnnTiming &t) {
    return t.ok ? nlohmann::ordered_json(round_to(t.us_per_step, 3)) : nullptr;
}

nlohmann::ordered_json speedup_or_null(const bench::RnnTiming &base, const bench::RnnTiming &amq) {
    return base.ok && amq.ok
               ? nlohmann::ordered_json(round_to(ratio(base.us_per_step, amq.us_per_step), 3))
               : nullptr;
}

nlohmann::ordered_json to_json(const bench::RnnResult &r) {
    const bench::RnnBenchConfig &c = r.cfg;
    nlohmann::ordered_json j = {{"arch", arch_name(c.arch)},
                                {"hidden", c.hidden_size},
                                {"input", c.input()},
                                {"bits", bits_str(c.bits.w, c.bits.a)},
                                {"threads", c.threads},
                                {"steps", c.steps},
                                {"batch", c.batch},
                                {"rounds", r.rounds},
                                {"isa", r.isa},
                                {"amq_us_per_step", us_or_null(r.amq)},
                                {"amq_step_us_per_step", us_or_null(r.amq_step)},
                                {"amq_float_us_per_step", us_or_null(r.amq_float)},
                                {"onednn_f32_us_per_step", us_or_null(r.onednn_f32)}};
    if (!r.onednn_f32.ok) j["onednn_f32_note"] = r.onednn_f32.note;
    j["onednn_int8_us_per_step"] = us_or_null(r.onednn_int8);
    // GRU: oneDNN's plain GRU, a speed baseline of the same size (no int8 LBR GRU).
    j["onednn_int8_cell"] = r.onednn_int8_cell;
    if (!r.onednn_int8.ok) j["onednn_int8_note"] = r.onednn_int8.note;
    j["speedup_vs_onednn_f32"] = speedup_or_null(r.onednn_f32, r.amq);
    j["speedup_vs_onednn_int8"] = speedup_or_null(r.onednn_int8, r.amq);
    j["speedup_vs_amq_float"] = speedup_or_null(r.amq_float, r.amq);
    j["model_bytes_amq"] = r.model_bytes_amq;
    j["model_bytes_f32"] = r.model_bytes_f32;
    j["compression"] = round_to(ratio(double(r.model_bytes_f32), double(r.model_bytes_amq)), 3);
    j["onednn_f32_impl"] = r.onednn_f32.impl;
    j["onednn_int8_impl"] = r.onednn_int8.impl;
    // Same weights and input: amq float must agree with oneDNN f32 to rounding.
    j["max_abs_diff_amq_float_vs_onednn_f32"] =
        r.onednn_f32.ok ? nlohmann::ordered_json(r.max_abs_diff_float) : nullptr;
    j["max_abs_diff_amq_vs_onednn_f32"] =
        r.onednn_f32.ok ? nlohmann::ordered_json(r.max_abs_diff_amq) : nullptr;
    // The floor (docs/PERFORMANCE.md): the step's binary products alone at the
    // rates measured in the same rounds; the ratios are medians over the rounds.
    const auto vs_floor = [](const bench::RnnTiming &t, double ratio) {
        return t.ok && ratio > 0 ? nlohmann::ordered_json(round_to(ratio, 3)) : nullptr;
    };
    // The kernels the build chose (the schedules file's "steps"), and the same
    // runner on the separate kernels and on the fused ones (when a fused step is
    // built; the fused one timed apart only where it was not chosen).
    j["step_kernels_run"] = r.fused_run ? "fused" : "separate";
    j["step_kernels_step"] = r.fused_step ? "fused" : "separate";
    const bench::RnnTiming &fused = r.amq_fused.ok ? r.amq_fused : r.amq,
                           &fused_step = r.amq_step_fused.ok ? r.amq_step_fused : r.amq_step;
    const bool built = r.amq_separate.ok;
    j["amq_fused_us_per_step"] = built ? us_or_null(fused) : nullptr;
    j["amq_step_fused_us_per_step"] = built ? us_or_null(fused_step) : nullptr;
    j["amq_separate_us_per_step"] = us_or_null(r.amq_separate);
    j["amq_step_separate_us_per_step"] = us_or_null(r.amq_step_separate);
    j["fused_speedup_run"] = built ? speedup_or_null(r.amq_separate, fused) : nullptr;
    j["fused_speedup_step"] = built ? speedup_or_null(r.amq_step_separate, fused_step) : nullptr;
    // A matrix runs a per-problem variant: the common kernels on the same weights.
    j["amq_common_us_per_step"] = us_or_null(r.amq_common);
    j["amq_step_common_us_per_step"] = us_or_null(r.amq_step_common);
    j["variant_speedup_run"] = speedup_or_null(r.amq_common, r.amq);
    j["variant_speedup_step"] = speedup_or_null(r.amq_step_common, r.amq_step);
    j["floor_us_per_step"] = measured_or_null(r.floor.run_us);
    j["step_floor_us_per_step"] = measured_or_null(r.floor.step_us);
    j["amq_vs_floor"] = vs_floor(r.amq, r.amq_vs_floor);
    j["step_vs_floor"] = vs_floor(r.amq_step, r.step_vs_floor);
    j["floor_rates"] = {{"groups_per_ns", round_to(r.floor.groups_per_ns, 3)},
                        {"read_gbps_recurrent", round_to(r.floor.read_gbps_run, 1)},
                        {"read_gbps_both", round_to(r.floor.read_gbps_step, 1)}};
    j["amq_spread"] = round_to(r.amq.spread, 4);
    j["runs_per_round"] = {{"amq", r.amq.runs_per_round},
                           {"onednn_f32", r.onednn_f32.runs_per_round},
                           {"onednn_int8", r.onednn_int8.runs_per_round},
                           {"amq_float", r.amq_float.runs_per_round}};
    double load[1] = {0};
    if (getloadavg(load, 1) == 1) j["load_average_1min"] = round_to(load[0], 2);
    return j;
}

void print_rnn_table(const nlohmann::ordered_json &j) {
    auto fixed = [](double v, int digits) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.*f", digits, v);
        return std::string(buf);
    };
    std::cout << j["arch"].get<std::string>() << ", hidden " << j["hidden"] << ", input "
              << j["input"] << ", batch " << j["batch"] << ", " << j["steps"] << " steps, "
              << j["threads"] << " thread(s), " << j["rounds"] << " rounds, isa "
              << j["isa"].get<std::string>()
              << "\n\n| runner | us/step | amq speedup | weight bytes |\n"
                 "| --- | ---: | ---: | ---: |\n";
    auto row = [&](const std::string &name, const char *us_key, const char *speedup_key,
                   const nlohmann::ordered_json &bytes) {
        std::cout << "| " << name << " | ";
        if (j[us_key].is_null()) {
            std::cout << "n/a | n/a | |\n";
            return;
        }
        std::cout << fixed(j[us_key].get<double>(), 2) << " | "
                  << (speedup_key ? fixed(j[speedup_key].get<double>(), 2) + "x" : "") << " | "
                  << (bytes.is_null() ? "" : std::to_string(bytes.get<size_t>())) << " |\n";
    };
    row("amq " + j["bits"].get<std::string>(), "amq_us_per_step", nullptr,
        j["model_bytes_amq"]);
    row("amq, step() by step()", "amq_step_us_per_step", nullptr, nullptr);
    if (!j["amq_separate_us_per_step"].is_null()) {
        std::cout << "| (the build's choice: run() " << j["step_kernels_run"].get<std::string>()
                  << ", step() " << j["step_kernels_step"].get<std::string>() << ") | | | |\n";
        row("amq run(), fused step kernels", "amq_fused_us_per_step", nullptr, nullptr);
        row("amq run(), separate kernels", "amq_separate_us_per_step", nullptr, nullptr);
        row("amq step(), fused step kernels", "amq_step_fused_us_per_step", nullptr, nullptr);
        row("amq step(), separate kernels", "amq_step_separate_us_per_step", nullptr, nullptr);
    }
    if (!j["amq_common_us_per_step"].is_null()) {
        row("amq run(), common kernels", "amq_common_us_per_step", nullptr, nullptr);
        row("amq step(), common kernels", "amq_step_common_us_per_step", nullptr, nullptr);
    }
    row("amq f32", "amq_float_us_per_step", "speedup_vs_amq_float", j["model_bytes_f32"]);
    row("oneDNN f32", "onednn_f32_us_per_step", "speedup_vs_onednn_f32", nullptr);
    if (j.contains("onednn_f32_avx2_us_per_step"))
        row("oneDNN f32, ONEDNN_MAX_CPU_ISA=AVX2", "onednn_f32_avx2_us_per_step", nullptr, nullptr);
    row("oneDNN int8, " + j["onednn_int8_cell"].get<std::string>(), "onednn_int8_us_per_step",
        "speedup_vs_onednn_int8", nullptr);
    if (!j["floor_us_per_step"].is_null())
        std::cout << "\nfloor (the products alone at this CPU's measured rates): run() "
                  << fixed(j["floor_us_per_step"].get<double>(), 2) << " us/step, step() "
                  << fixed(j["step_floor_us_per_step"].get<double>(), 2) << " us/step\n";
    for (const char *key : {"onednn_f32_note", "onednn_int8_note"})
        if (j.contains(key)) std::cout << "\n" << key << ": " << j[key].get<std::string>() << "\n";
    std::cout << std::flush;
}

// oneDNN's f32 RNN picks a slower implementation on some AVX-512 CPUs than when
// capped at AVX2; the cap holds for a whole process, so the same benchmark runs
// again in a child process with ONEDNN_MAX_CPU_ISA=AVX2, and the faster oneDNN
// f32 figure is the one amq is compared with (speedup_vs_onednn_best_f32).
void add_onednn_avx2(const RnnOptions &o, nlohmann::ordered_json &j) {
    char self[4096] = {};
    if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) return;
    std::string cmd =
        "ONEDNN_MAX_CPU_ISA=AVX2 '" + std::string(self) + "' bench rnn --json --no-avx2-onednn";
    cmd += " --arch " + o.arch + " --hidden " + std::to_string(o.hidden) + " --bits " + o.bits +
           " --threads " + std::to_string(o.threads) + " --steps " + std::to_string(o.steps) +
           " --rounds " + std::to_string(o.rounds) + " --batch " + std::to_string(o.batch);
    if (o.input_given) cmd += " --input " + std::to_string(o.input);
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char buf[4096];
        for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
        if (pclose(p) != 0) out.clear();
    }
    const auto child = nlohmann::ordered_json::parse(out, nullptr, false);
    const auto &f32 = j["onednn_f32_us_per_step"];
    if (child.is_discarded() || child["onednn_f32_us_per_step"].is_null()) {
        j["onednn_f32_avx2_us_per_step"] = nullptr;
        j["onednn_f32_avx2_note"] = "the ONEDNN_MAX_CPU_ISA=AVX2 child run failed";
        j["speedup_vs_onednn_best_f32"] = j["speedup_vs_onednn_f32"];
        return;
    }
    const double avx2 = child["onednn_f32_us_per_step"].get<double>();
    j["onednn_f32_avx2_us_per_step"] = avx2;
    j["onednn_f32_avx2_impl"] = child["onednn_f32_impl"];
    const double best = f32.is_null() ? avx2 : std::min(avx2, f32.get<double>());
    j["onednn_best_f32_us_per_step"] = best;
    j["speedup_vs_onednn_best_f32"] =
        j["amq_us_per_step"].is_null()
            ? nullptr
            : nlohmann::ordered_json(best / j["amq_us_per_step"].get<double>());
}

void run_rnn(const RnnOptions &o) {
    if (o.arch != "lstm" && o.arch != "gru")
        throw UsageError("--arch '" + o.arch + "': expected lstm or gru");
    check_range("--hidden", o.hidden, 1, kMaxWidth);
    if (o.input_given) check_range("--input", o.input, 1, kMaxWidth);
    check_range("--threads", o.threads, 1, 4096);
    check_range("--steps", o.steps, 1, 1000000);
    check_range("--rounds", o.rounds, 1, 100000);
    bench::RnnBenchConfig cfg;
    cfg.arch = o.arch == "lstm" ? Arch::lstm : Arch::gru;
    cfg.hidden_size = size_t(o.hidden);
    cfg.input_size = o.input_given ? size_t(o.input) : size_t(o.hidden);
    cfg.bits = parse_bits("--bits", o.bits);
    cfg.threads = o.threads;
    cfg.steps = o.steps;
    check_range("--batch", o.batch, 1, 1024);
    cfg.batch = o.batch;
    nlohmann::ordered_json j = to_json(bench::measure_rnn(cfg, o.rounds));
    if (!o.no_avx2_onednn) add_onednn_avx2(o, j);
    if (o.json)
        std::cout << j.dump(2) << std::endl;
    else
        print_rnn_table(j);
}

}  // namespace

void add_bench_command(CLI::App &app) {
    auto *bench = app.add_subcommand("bench", "Time the kernels against the float baselines");
    bench->require_subcommand(1);
    auto *gemv = bench->add_subcommand(
        "gemv",
        "amq GEMV (activation quantization + bgemv) vs the Halide float GEMV and "
        "OpenBLAS sgemv; medians of interleaved rounds");
    auto o = std::make_shared<GemvOptions>();
    auto *shape = gemv->add_option("--shape", o->shape, "ROWSxCOLS, e.g. 4096x1024");
    auto *bits =
        gemv->add_option("--bits", o->bits, "Weight and activation bits, e.g. W2A2 (1..4 each; the alias 2x2 works too)");
    gemv->add_flag("--all", o->all, "Every shape x bits pair of the spec (amq::spec::bench_*)")
        ->excludes(shape)
        ->excludes(bits);
    gemv->add_option("--threads", o->threads, "Threads for amq, Halide and OpenBLAS")
        ->capture_default_str();
    gemv->add_option("--rounds", o->rounds, "Interleaved timing rounds")->capture_default_str();
    gemv->add_option("--iters", o->iters, "Alternating cycles of the activation quantizer (0..3)")
        ->capture_default_str();
    gemv->add_flag("--json", o->json, "Print JSON (an array with --all) instead of a table");
    gemv->callback([o] { run_gemv(*o); });

    auto *rnn = bench->add_subcommand(
        "rnn",
        "The LSTM/GRU runner on a random quantized layer vs the same layer on "
        "amq's f32 kernels and oneDNN f32/int8; medians of interleaved rounds");
    auto r = std::make_shared<RnnOptions>();
    rnn->add_option("--arch", r->arch, "lstm or gru")->required();
    rnn->add_option("--hidden", r->hidden, "Hidden size H (1..8192)")->required();
    auto *input = rnn->add_option("--input", r->input, "Input size I (1..8192; default: H)");
    rnn->add_option("--bits", r->bits, "Weight and activation bits, e.g. W2A2 (1..4 each; the alias 2x2 works too)")
        ->capture_default_str();
    rnn->add_option("--threads", r->threads, "Threads for amq and oneDNN")->capture_default_str();
    rnn->add_option("--steps", r->steps, "Time steps T of one timed sequence")
        ->capture_default_str();
    rnn->add_option("--rounds", r->rounds, "Interleaved timing rounds")->capture_default_str();
    rnn->add_option("--batch", r->batch, "Sequences run together (us per step covers all)")
        ->capture_default_str();
    rnn->add_flag("--json", r->json, "Print JSON instead of a table");
    rnn->add_flag("--no-avx2-onednn", r->no_avx2_onednn,
                  "Skip the second oneDNN f32 run capped at AVX2 (in a child process)");
    rnn->callback([r, input] {
        r->input_given = input->count() > 0;
        run_rnn(*r);
    });
}

}  // namespace amq::tools
