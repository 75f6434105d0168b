// amq info [MODEL] [--json]: the CPU (via cpuinfo), the kernel variant this build
// runs on it, the weight layout and the Halide version; with MODEL, the model's
// metadata and tensors instead; with --kernels, every kernel linked into this
// build (the common ones and the per-problem variants).
#include <cpuinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "amq/autotune/cpu_identity.h"
#include "amq/kernels.h"
#include "amq/model.h"
#include "amq/safetensors.h"
#include "commands.h"

namespace amq::tools {
namespace {

// The CPU as the tuner identifies it (records and tuned schedules are keyed by
// its id), plus cpuinfo's core counts.
nlohmann::ordered_json describe() {
    nlohmann::ordered_json j, cpu, features;
    const tune::CpuIdentity id = tune::detect_cpu();
    cpu["vendor"] = id.vendor;
    cpu["name"] = id.name;
    cpu["id"] = id.id;
    if (cpuinfo_initialize()) {
        cpu["packages"] = cpuinfo_get_packages_count();
        cpu["cores"] = cpuinfo_get_cores_count();
        cpu["logical_processors"] = cpuinfo_get_processors_count();
    } else {
        cpu["error"] = "cpuinfo could not read this CPU's description";
    }
    cpu["l1d_bytes"] = id.l1d_bytes;
    cpu["l2_bytes"] = id.l2_bytes;
    cpu["l3_bytes"] = id.l3_bytes;
    for (const char *f :
         {"sse4_1", "popcnt", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vpopcntdq"})
        features[f] = std::find(id.features.begin(), id.features.end(), f) != id.features.end();
    j["cpu"] = cpu;
    j["features"] = features;
    j["isa"] = isa_name(active_isa());
    const char *cap = std::getenv("AMQ_ISA");
    j["amq_isa_env"] = cap && *cap ? nlohmann::ordered_json(cap) : nlohmann::ordered_json(nullptr);
    j["layout"] = kernel_layout().layout;
    j["tile"] = kernel_layout().tile;
    j["float_panel"] = float_panel();
    j["schedules"] = kernel_schedules();
    j["halide_version"] = halide_version();
    // The fused step kernels built (batch 1) and the build's choices between
    // them and the separate kernels (the schedules file's "steps").
    nlohmann::ordered_json fused = nlohmann::ordered_json::array(),
                           choices = nlohmann::ordered_json::array();
    for (int w = 1; w <= 4; ++w)
        for (int a = 1; a <= 4; ++a)
            if (fused_step_built(w, a, 2)) fused.push_back(bits_str(w, a));
    for (const StepChoiceEntry *e = step_choices(); e->cell; ++e)
        choices.push_back({{"cell", e->cell},
                           {"bits", bits_str(e->k_w, e->k_a)},
                           {"hidden", e->hidden},
                           {"batch", e->batch},
                           {"call", e->call},
                           {"kernels", e->fused ? "fused" : "separate"},
                           {"fused_us", e->fused_us},
                           {"separate_us", e->separate_us}});
    j["fused_steps"] = fused;
    j["step_choices"] = choices;
    return j;
}

std::string size_str(const nlohmann::ordered_json &bytes) {
    uint64_t b = bytes.get<uint64_t>();
    if (!b) return "?";
    if (b % (1 << 20) == 0) return std::to_string(b >> 20) + " MiB";
    return std::to_string(b >> 10) + " KiB";
}

void print_text(const nlohmann::ordered_json &j) {
    const auto &c = j["cpu"];
    std::cout << "CPU:      " << c["name"].get<std::string>() << " ("
              << c["vendor"].get<std::string>() << "; id " << c["id"].get<std::string>() << ")\n";
    if (c.contains("error")) {
        std::cout << "          " << c["error"].get<std::string>() << "\n";
    } else {
        std::cout << "          " << c["cores"] << " core(s), " << c["logical_processors"]
                  << " logical processor(s), " << c["packages"] << " package(s)\n"
                  << "Caches:   L1d " << size_str(c["l1d_bytes"]) << ", L2 "
                  << size_str(c["l2_bytes"]) << ", L3 " << size_str(c["l3_bytes"])
                  << " (per instance)\n";
    }
    std::cout << "Features:";
    for (const auto &[name, on] : j["features"].items())
        std::cout << " " << name << (on.get<bool>() ? "+" : "-");
    std::cout << "\nKernels:  " << j["isa"].get<std::string>()
              << " (variant chosen for this CPU; AMQ_ISA=avx512|avx2|sse41 caps it";
    if (!j["amq_isa_env"].is_null())
        std::cout << ", now AMQ_ISA=" << j["amq_isa_env"].get<std::string>();
    std::cout << ")\nLayout:   " << j["layout"].get<std::string>() << ", " << j["tile"]
              << " rows per tile; float matrices in panels of " << j["float_panel"]
              << " rows\nSchedule: " << j["schedules"].get<std::string>()
              << "\nHalide:   " << j["halide_version"].get<std::string>() << "\n";
    std::cout << "Steps:    fused step kernels for";
    for (const auto &b : j["fused_steps"]) std::cout << " " << b.get<std::string>();
    if (j["fused_steps"].empty()) std::cout << " no bit pair";
    size_t separate = 0;
    for (const auto &c : j["step_choices"]) separate += c["kernels"] == "separate";
    std::cout << "; " << j["step_choices"].size() << " problems timed (amq tune --steps), "
              << separate << " of them on the separate kernels\n";
}

// The model file: metadata (the vocabulary shortened), tensors, and the summary
// of the network it holds (load_model checks it all).
nlohmann::ordered_json describe_model(const std::string &path) {
    const ModelFile model = load_model(path);  // throws, naming the file and tensor
    const st::Reader file = st::Reader::open(path);
    nlohmann::ordered_json j, meta, tensors = nlohmann::ordered_json::array();
    for (const auto &[key, value] : file.metadata())
        meta[key] = key == "vocab" ? std::to_string(model.vocab.size()) + " words" : value;
    uint64_t bytes = 0, float_bytes = 0;
    for (const st::TensorInfo &t : file.tensors()) {
        tensors.push_back({{"name", t.name},
                           {"dtype", st::dtype_name(t.dtype)},
                           {"shape", t.shape},
                           {"bytes", t.nbytes()}});
        bytes += t.nbytes();
    }
    for (const auto &[name, t] : model.floats) float_bytes += t.data.size() * 4;
    for (const auto &[name, q] : model.quant) float_bytes += q.rows * q.cols * 4;
    const RnnShape &s = model.shape;
    j["file"] = path;
    j["kind"] = model.quantized() ? "quantized" : "float";
    j["arch"] = s.arch == Arch::lstm ? "lstm" : "gru";
    j["layers"] = s.layers;
    j["input_size"] = s.input_size;
    j["hidden_size"] = s.hidden_size;
    j["bidirectional"] = s.bidirectional;
    j["proj_size"] = s.proj_size;
    j["output_size"] = s.output_size();
    j["vocab_size"] = s.vocab_size;
    if (model.quantized()) {
        j["bits"] = bits_str(model.k_w, model.k_a);
        j["method"] = model.method;
        j["act_method"] = model.act_method;
        nlohmann::ordered_json matrices = nlohmann::ordered_json::array();
        for (const QuantMatrixInfo &q : quantized_matrices(model))
            matrices.push_back({{"name", q.name},
                                {"shape", shape_str(q.rows, q.cols)},
                                {"k_w", q.bits.k_w},
                                {"k_a", q.bits.k_a},
                                {"act_method", q.bits.act_method}});
        j["matrices"] = matrices;
    }
    j["tensor_bytes"] = bytes;
    j["float_bytes"] = float_bytes;
    j["first_words"] = std::vector<std::string>(
        model.vocab.begin(), model.vocab.begin() + std::min<size_t>(model.vocab.size(), 10));
    j["metadata"] = meta;
    j["tensors"] = tensors;
    return j;
}

void print_model(const nlohmann::ordered_json &j) {
    std::cout << "Model:    " << j["file"].get<std::string>() << " ("
              << j["kind"].get<std::string>() << ")\n"
              << "Network:  " << j["arch"].get<std::string>() << ", " << j["layers"]
              << " layer(s)" << (j["bidirectional"].get<bool>() ? ", bidirectional" : "")
              << ", input " << j["input_size"] << ", hidden " << j["hidden_size"];
    if (j["proj_size"].get<size_t>()) std::cout << ", proj " << j["proj_size"];
    if (j["vocab_size"].get<size_t>()) std::cout << ", vocabulary " << j["vocab_size"];
    std::cout << "\n";
    if (j.contains("bits")) {
        std::cout << "Bits:     " << j["bits"].get<std::string>() << " ("
                  << j["method"].get<std::string>() << " weights, "
                  << j["act_method"].get<std::string>() << " activations)\n";
        for (const auto &q : j["matrices"])
            std::printf("  %-20s %-10s W%dA%d %s\n", q["name"].get<std::string>().c_str(),
                        q["shape"].get<std::string>().c_str(), q["k_w"].get<int>(),
                        q["k_a"].get<int>(), q["act_method"].get<std::string>().c_str());
    }
    const double mb = j["tensor_bytes"].get<double>() / 1e6;
    const double ratio = j["float_bytes"].get<double>() / j["tensor_bytes"].get<double>();
    std::printf("Size:     %.2f MB of tensors, %.1fx smaller than float\n", mb, ratio);
    std::cout << "Metadata:\n";
    for (const auto &[key, value] : j["metadata"].items())
        std::cout << "  " << key << " = " << value.get<std::string>() << "\n";
    std::cout << "Tensors:\n";
    for (const auto &t : j["tensors"]) {
        std::string shape;
        for (const auto &d : t["shape"]) shape += (shape.empty() ? "" : ", ") + d.dump();
        std::printf("  %-24s %-5s [%s] %llu bytes\n", t["name"].get<std::string>().c_str(),
                    t["dtype"].get<std::string>().c_str(), shape.c_str(),
                    (unsigned long long)t["bytes"].get<uint64_t>());
    }
}

// Every linked kernel: pipeline, bits, shape (or "any"), knobs, ISA variants.
nlohmann::ordered_json describe_kernels() {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const KernelInfo &k : linked_kernels()) {
        nlohmann::ordered_json j;
        j["name"] = k.name;
        j["pipeline"] = k.pipeline;
        j["bits"] = k.bits.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(k.bits);
        j["shape"] = k.variant ? nlohmann::ordered_json({k.rows, k.cols}) : nlohmann::ordered_json("any");
        j["knobs"] = nlohmann::ordered_json::parse(k.knobs);
        j["isa"] = k.isa;
        j["variant"] = k.variant;
        if (k.variant) {
            j["tuned_us"] = k.tuned_us;
            j["common_us"] = k.common_us;
        }
        list.push_back(j);
    }
    nlohmann::ordered_json out;
    out["schedules"] = kernel_schedules();
    out["kernels"] = list;
    return out;
}

void print_kernels(const nlohmann::ordered_json &j) {
    std::cout << "Schedules: " << j["schedules"].get<std::string>() << "\n";
    std::printf("%-28s %-13s %-5s %-11s %s\n", "kernel", "pipeline", "bits", "shape", "knobs");
    for (const auto &k : j["kernels"]) {
        const std::string shape = k["shape"].is_string()
                                      ? k["shape"].get<std::string>()
                                      : k["shape"][0].dump() + "x" + k["shape"][1].dump();
        std::printf("%-28s %-13s %-5s %-11s %s\n", k["name"].get<std::string>().c_str(),
                    k["pipeline"].get<std::string>().c_str(),
                    k["bits"].is_null() ? "-" : k["bits"].get<std::string>().c_str(), shape.c_str(),
                    k["knobs"].dump().c_str());
    }
    std::string isa;
    for (const auto &i : j["kernels"][0]["isa"]) isa += (isa.empty() ? "" : ", ") + i.get<std::string>();
    std::cout << "Every kernel holds the ISA variants " << isa << " (chosen at run time).\n";
}

}  // namespace

void add_info_command(CLI::App &app) {
    auto *cmd = app.add_subcommand("info",
                                   "Show the CPU, its features, the kernel variant "
                                   "chosen for it, the weight layout and the Halide "
                                   "version");
    auto json = std::make_shared<bool>(false);
    auto model = std::make_shared<std::string>();
    cmd->add_option("model", *model, "A model file (.amq or float .safetensors) to describe");
    cmd->add_flag("--json", *json, "Print one JSON object");
    auto kernels = std::make_shared<bool>(false);
    cmd->add_flag("--kernels", *kernels,
                  "List every kernel linked into this build: pipeline, bits, shape (any, or the "
                  "shape of a per-problem variant), knobs, ISA variants");
    cmd->callback([json, model, kernels] {
        if (*kernels) {
            if (!model->empty()) throw UsageError("give either MODEL or --kernels, not both");
            nlohmann::ordered_json j = describe_kernels();
            if (*json)
                std::cout << j.dump(2) << "\n";
            else
                print_kernels(j);
            return;
        }
        if (!model->empty()) {
            nlohmann::ordered_json j = describe_model(*model);
            if (*json)
                std::cout << j.dump(2) << "\n";
            else
                print_model(j);
            return;
        }
        nlohmann::ordered_json j = describe();
        if (*json)
            std::cout << j.dump(2) << "\n";
        else
            print_text(j);
    });
}

}  // namespace amq::tools
