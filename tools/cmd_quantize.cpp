// amq quantize: a float model (.safetensors state_dict) -> a quantized model (.amq),
// with the relative error of every matrix; --compare prints the error of every
// method at 2, 3 and 4 bits, like Table 1 of the AMQ paper.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "amq/model.h"
#include "amq/quantize_model.h"
#include "commands.h"

namespace amq::tools {
namespace {

struct QuantizeArgs {
    std::string in, out, method = "alternating", init = "refined", act_method = "alternating";
    std::string lm_parts = "float", range = "row";
    int wbits = 2, abits = 2, iters = 2, act_iters = 2, threads = 0;
    bool compare = false, json = false;
    std::vector<std::string> bits_for;  // NAME=WxA[:ACT_METHOD], repeatable
};


double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

QuantTensor quantize_tensor(const ModelFile &m, const std::string &name, const QuantizeOptions &o) {
    const auto [rows, cols] = matrix_dims(m.shape, name);
    try {
        return quantize_matrix(m.floats.at(name).data.data(), rows, cols, o);
    } catch (const std::invalid_argument &e) {
        throw std::runtime_error("tensor '" + name + "': " + e.what());
    }
}

ModelFile load_float(const std::string &path) {
    ModelFile m = load_model(path);
    if (m.quantized())
        throw UsageError("--in '" + path + "' is already a quantized model (format amq, k_w = " +
                         std::to_string(m.k_w) + "); give a float .safetensors state_dict");
    return m;
}

void run_quantize(const QuantizeArgs &a) {
    QuantizeOptions o;
    o.method = parse_method(a.method);
    o.bits = a.wbits;
    o.iters = a.iters;
    o.threads = a.threads;
    o.init = parse_init(a.init);
    o.range = parse_range(a.range);
    if (!method_supports_bits(o.method, o.bits))
        throw UsageError("--wbits " + std::to_string(a.wbits) + ": method " + a.method +
                         (o.method == Method::ternary ? " stores 2 planes, expected --wbits 2"
                                                      : " expects 1..4"));
    if (a.out.empty()) throw UsageError("give the output file with -o model.amq");
    if (a.act_method == "ternary" && a.abits != 2)
        throw UsageError("--abits " + std::to_string(a.abits) +
                         ": --act-method ternary stores 2 planes, expected --abits 2 (the default)");

    ModelQuantizeOptions mo;
    mo.weights = o;
    mo.k_a = a.abits;
    mo.act_method = a.act_method;
    mo.act_iters = a.act_iters;
    mo.lm_parts = a.lm_parts == "quantized";
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<TensorError> errors;
    const ModelFile float_model = load_float(a.in);
    mo.bits_for = parse_bits_for(a.bits_for, float_model.shape);
    ModelFile m = quantize_model(float_model, mo, &errors);
    m.metadata["quantized_from"] = a.in;
    save_model(a.out, m);
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    ErrorSums total;
    if (!a.json) std::printf("%-22s %-12s %12s  %s\n", "tensor", "shape", "rel. MSE", "bits");
    for (const TensorError &e : errors) {
        total += e.error;
        const std::string shape = shape_str(e.rows, e.cols);
        const MatrixBits b = m.bits_of(e.name);
        const std::string bits = "W" + std::to_string(b.k_w) + "A" + std::to_string(b.k_a) + " " +
                                 b.act_method;
        tensors.push_back({{"name", e.name},
                           {"shape", shape},
                           {"k_w", b.k_w},
                           {"k_a", b.k_a},
                           {"act_method", b.act_method},
                           {"relative_mse", e.error.relative()}});
        if (!a.json)
            std::printf("%-22s %-12s %12s  %s\n", e.name.c_str(), shape.c_str(),
                        fixed(e.error.relative(), 5).c_str(), bits.c_str());
    }
    const double secs = seconds_since(t0);
    if (a.json) {
        nlohmann::ordered_json j = {{"in", a.in},         {"out", a.out},
                                    {"method", a.method}, {"wbits", a.wbits},
                                    {"abits", a.abits},   {"iters", m.iters},
                                    {"tensors", tensors}, {"total_relative_mse", total.relative()},
                                    {"seconds", secs}};
        std::cout << j.dump(2) << "\n";
    } else {
        std::printf("%-22s %-12s %12s\n", "total", "", fixed(total.relative(), 5).c_str());
        std::printf("wrote %s (%s, W%dA%d, %zu matrices quantized) in %.2f s\n", a.out.c_str(),
                    a.method.c_str(), a.wbits, a.abits, errors.size(), secs);
    }
}

// Relative MSE of every method at 2, 3 and 4 bits over the recurrent and input
// weight matrices together.
void run_compare(const QuantizeArgs &a) {
    const ModelFile m = load_float(a.in);
    const std::vector<std::string> names = rnn_matrix_names(m.shape);
    const int bits_list[] = {2, 3, 4};
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    std::ostringstream table;
    table << "| method | 2-bit | 3-bit | 4-bit | seconds |\n| --- | --- | --- | --- | --- |\n";
    struct Variant {
        Method method;
        Range range;
    };
    std::vector<Variant> variants;
    for (Method method : all_methods()) {
        variants.push_back({method, Range::row});
        if (method == Method::uniform || method == Method::balanced)
            variants.push_back({method, Range::tensor});
    }
    for (const auto [method, range] : variants) {
        const bool ranged = method == Method::uniform || method == Method::balanced;
        nlohmann::ordered_json row = {{"method", method_name(method)}};
        if (ranged) row["range"] = range_name(range);
        table << "| " << method_name(method)
              << (ranged ? (range == Range::row ? " (row range)" : " (tensor range)") : "");
        const auto t0 = std::chrono::steady_clock::now();
        for (int bits : bits_list) {
            const std::string key = std::to_string(bits) + "bit";
            if (!method_supports_bits(method, bits)) {
                row[key] = nullptr;
                table << " | —";
                continue;
            }
            QuantizeOptions o;
            o.method = method;
            o.bits = bits;
            o.iters = a.iters;
            o.threads = a.threads;
            o.init = parse_init(a.init);
            o.range = range;
            ErrorSums total;
            for (const std::string &name : names)
                total +=
                    quantization_error(m.floats.at(name).data.data(), quantize_tensor(m, name, o));
            row[key] = total.relative();
            table << " | " << fixed(total.relative(), 3);
        }
        const double secs = seconds_since(t0);
        row["seconds"] = secs;
        table << " | " << fixed(secs, 2) << " |\n";
        rows.push_back(row);
    }
    if (a.json) {
        std::cout << nlohmann::ordered_json{{"in", a.in},
                                            {"matrices", names},
                                            {"iters", a.iters},
                                            {"alternating_init", a.init},
                                            {"relative_mse", rows}}
                         .dump(2)
                  << "\n";
    } else {
        std::cout << "Relative MSE ||w - w_q||^2 / ||w||^2 over";
        for (const std::string &n : names) std::cout << " " << n;
        std::cout << " (alternating: T = " << a.iters << ", " << a.init << " init)\n\n"
                  << table.str();
    }
}

}  // namespace

void add_quantize_command(CLI::App &app) {
    auto a = std::make_shared<QuantizeArgs>();
    auto *cmd = app.add_subcommand(
        "quantize",
        "Quantize a float LSTM/GRU (.safetensors state_dict, see python/export_torch.py) "
        "into an .amq model; --compare prints the error of every method at 2, 3 and 4 bits");
    cmd->add_option("--in", a->in, "Float model (.safetensors)")->required();
    cmd->add_option("-o,--out", a->out, "Quantized model to write (.amq)");
    cmd->add_option("--method", a->method,
                    "alternating|greedy|refined|uniform|balanced|ternary (default alternating)");
    cmd->add_option("--wbits", a->wbits, "Weight bits 1..4 (ternary: 2; default 2)")
        ->check(CLI::Range(1, 4));
    cmd->add_option("--abits", a->abits, "Activation bits 1..4 used by the runner (default 2)")
        ->check(CLI::Range(1, 4));
    cmd->add_option("--iters", a->iters, "Alternating cycles T for the weights (default 2)")
        ->check(CLI::Range(0, 100));
    cmd->add_option("--init", a->init,
                    "Alternating's start: refined (default) or greedy (the paper's)")
        ->check(CLI::IsMember({"refined", "greedy"}));
    cmd->add_option("--range", a->range,
                    "uniform/balanced: levels from each row (default) or from the whole "
                    "matrix (tensor, as the paper's baselines)")
        ->check(CLI::IsMember({"row", "tensor"}));
    cmd->add_option("--act-method", a->act_method,
                    "Online activation quantizer: alternating (default), greedy or ternary "
                    "(2 planes, --abits 2; docs/MODEL_FORMAT.md)")
        ->check(CLI::IsMember({"alternating", "greedy", "ternary"}));
    cmd->add_option("--act-iters", a->act_iters, "Activation cycles T, 0..3 (default 2)")
        ->check(CLI::Range(0, 3));
    cmd->add_option("--lm-parts", a->lm_parts,
                    "Language models: keep the embedding and decoder float (default) or "
                    "quantize them too")
        ->check(CLI::IsMember({"float", "quantized"}));
    cmd->add_option("--bits-for", a->bits_for,
                    "NAME=WxA[:ACT_METHOD]: bits of one matrix (weight_ih_lL, weight_hh_lL, "
                    "embedding.weight, decoder.weight), e.g. decoder.weight=4x4 or "
                    "weight_hh_l0=2x2:ternary; repeatable. A named embedding or decoder is "
                    "quantized even with --lm-parts float");
    cmd->add_option("--threads", a->threads, "Threads (default: all)")->check(CLI::Range(0, 1024));
    cmd->add_flag("--compare", a->compare,
                  "Print the relative MSE of every method at 2, 3 and 4 bits, write nothing");
    cmd->add_flag("--json", a->json, "Print one JSON object");
    cmd->callback([a] {
        try {
            if (a->compare)
                run_compare(*a);
            else
                run_quantize(*a);
        } catch (const std::invalid_argument &e) {
            throw UsageError(e.what());
        }
    });
}

}  // namespace amq::tools
