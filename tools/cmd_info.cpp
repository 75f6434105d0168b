// amq info [--json]: the CPU (via cpuinfo), the kernel variant this build runs on
// it, the weight layout and the Halide version.
#include <cpuinfo.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "amq/kernels.h"
#include "commands.h"

namespace amq::tools {
namespace {

const char *vendor_name(cpuinfo_vendor v) {
    switch (v) {
        case cpuinfo_vendor_intel: return "Intel";
        case cpuinfo_vendor_amd: return "AMD";
        case cpuinfo_vendor_hygon: return "Hygon";
        case cpuinfo_vendor_via: return "VIA";
        case cpuinfo_vendor_arm: return "ARM";
        case cpuinfo_vendor_apple: return "Apple";
        default: return "unknown";
    }
}

// Model name from /proc/cpuinfo, for when cpuinfo leaves the package name empty.
std::string proc_model_name() {
    std::ifstream f("/proc/cpuinfo");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
            return line.substr(line.find_first_not_of(" \t", line.find(':') + 1));
    return "";
}

uint32_t cache_size(const cpuinfo_cache *c) { return c ? c->size : 0; }

nlohmann::ordered_json describe() {
    nlohmann::ordered_json j, cpu, features;
    if (cpuinfo_initialize()) {
        const cpuinfo_package *pkg = cpuinfo_get_package(0);
        const cpuinfo_core *core = cpuinfo_get_core(0);
        std::string name = pkg ? pkg->name : "";
        cpu["vendor"] = core ? vendor_name(core->vendor) : "unknown";
        cpu["name"] = name.empty() ? proc_model_name() : name;
        cpu["packages"] = cpuinfo_get_packages_count();
        cpu["cores"] = cpuinfo_get_cores_count();
        cpu["logical_processors"] = cpuinfo_get_processors_count();
        cpu["l1d_bytes"] = cache_size(cpuinfo_get_l1d_cache(0));
        cpu["l2_bytes"] = cache_size(cpuinfo_get_l2_cache(0));
        cpu["l2_count"] = cpuinfo_get_l2_caches_count();
        cpu["l3_bytes"] = cache_size(cpuinfo_get_l3_cache(0));
        features = {{"sse4_1", cpuinfo_has_x86_sse4_1()},
                    {"popcnt", cpuinfo_has_x86_popcnt()},
                    {"avx2", cpuinfo_has_x86_avx2()},
                    {"fma", cpuinfo_has_x86_fma3()},
                    {"avx512f", cpuinfo_has_x86_avx512f()},
                    {"avx512bw", cpuinfo_has_x86_avx512bw()},
                    {"avx512vl", cpuinfo_has_x86_avx512vl()},
                    {"avx512vpopcntdq", cpuinfo_has_x86_avx512vpopcntdq()}};
    } else {
        cpu["vendor"] = "unknown";
        cpu["name"] = proc_model_name();
        cpu["error"] = "cpuinfo could not read this CPU's description";
    }
    j["cpu"] = cpu;
    j["features"] = features;
    j["isa"] = isa_name(active_isa());
    const char *cap = std::getenv("AMQ_ISA");
    j["amq_isa_env"] = cap && *cap ? nlohmann::ordered_json(cap) : nlohmann::ordered_json(nullptr);
    j["layout"] = kernel_layout().layout;
    j["tile"] = kernel_layout().tile;
    j["halide_version"] = halide_version();
    return j;
}

std::string kib(const nlohmann::ordered_json &bytes) {
    return bytes.get<uint64_t>() ? std::to_string(bytes.get<uint64_t>() / 1024) + " KiB" : "?";
}

void print_text(const nlohmann::ordered_json &j) {
    const auto &c = j["cpu"];
    std::cout << "CPU:      " << c["name"].get<std::string>() << " ("
              << c["vendor"].get<std::string>() << ")\n";
    if (c.contains("error")) {
        std::cout << "          " << c["error"].get<std::string>() << "\n";
    } else {
        std::cout << "          " << c["cores"] << " cores, " << c["logical_processors"]
                  << " logical processors, " << c["packages"] << " package(s)\n"
                  << "          L1d " << kib(c["l1d_bytes"]) << " per core, L2 "
                  << kib(c["l2_bytes"]) << " (x" << c["l2_count"] << "), L3 "
                  << kib(c["l3_bytes"]) << "\n";
    }
    std::cout << "Features:";
    for (const auto &[name, on] : j["features"].items())
        std::cout << " " << name << (on.get<bool>() ? "+" : "-");
    std::cout << "\nKernels:  " << j["isa"].get<std::string>()
              << " (the best variant this CPU runs; AMQ_ISA=avx512|avx2|sse41 caps it";
    if (!j["amq_isa_env"].is_null())
        std::cout << ", now AMQ_ISA=" << j["amq_isa_env"].get<std::string>();
    std::cout << ")\nLayout:   " << j["layout"].get<std::string>() << ", " << j["tile"]
              << " rows per tile\nHalide:   " << j["halide_version"].get<std::string>()
              << "\n";
}

}  // namespace

void add_info_command(CLI::App &app) {
    auto *cmd = app.add_subcommand("info", "Show the CPU, its features, the kernel variant "
                                           "chosen for it, the weight layout and the Halide "
                                           "version");
    auto json = std::make_shared<bool>(false);
    cmd->add_flag("--json", *json, "Print one JSON object");
    cmd->callback([json] {
        nlohmann::ordered_json j = describe();
        if (*json) std::cout << j.dump(2) << "\n";
        else print_text(j);
    });
}

}  // namespace amq::tools
