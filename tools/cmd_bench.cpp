// amq bench gemv: amq (activation quantization + bgemv) against bgemv alone, the
// Halide float GEMV and OpenBLAS sgemv, one shape or the whole spec (--all), as a
// markdown table or JSON.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "commands.h"
#include "gemv_measure.h"

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

nlohmann::ordered_json to_json(const bench::GemvResult &r) {
    double compression = ratio(double(r.f32_weight_bytes), double(r.weight_bytes));
    return {{"shape", shape_str(r.rows, r.cols)},
            {"rows", r.rows},
            {"cols", r.cols},
            {"bits", bits_str(r.k_w, r.k_a)},
            {"k_w", r.k_w},
            {"k_a", r.k_a},
            {"act_iters", r.iters},
            {"threads", r.threads},
            {"isa", r.isa},
            {"layout", r.layout},
            {"amq_us", round_to(r.amq_us, 3)},
            {"amq_gemv_only_us", round_to(r.amq_gemv_only_us, 3)},
            {"quantize_act_us", round_to(r.quantize_act_us, 3)},
            {"f32_halide_us", round_to(r.f32_halide_us, 3)},
            {"sgemv_us", round_to(r.sgemv_us, 3)},
            {"speedup_vs_sgemv", round_to(ratio(r.sgemv_us, r.amq_us), 3)},
            {"speedup_gemv_only_vs_sgemv", round_to(ratio(r.sgemv_us, r.amq_gemv_only_us), 3)},
            {"speedup_vs_f32_halide", round_to(ratio(r.f32_halide_us, r.amq_us), 3)},
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
    std::cout << "| " << j["shape"].get<std::string>() << " | W" << j["k_w"] << "A" << j["k_a"]
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
            throw UsageError("bench gemv: give --shape ROWSxCOLS and --bits WxA, or --all");
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
        gemv->add_option("--bits", o->bits, "Weight x activation bits, e.g. 2x2 (1..4 each)");
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
}

}  // namespace amq::tools
