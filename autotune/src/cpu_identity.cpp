#include "amq/autotune/cpu_identity.h"

#include <cpuinfo.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace amq::tune {
namespace {

const char *vendor_name(cpuinfo_vendor v) {
    switch (v) {
        case cpuinfo_vendor_intel:
            return "Intel";
        case cpuinfo_vendor_amd:
            return "AMD";
        case cpuinfo_vendor_hygon:
            return "Hygon";
        case cpuinfo_vendor_via:
            return "VIA";
        case cpuinfo_vendor_arm:
            return "ARM";
        case cpuinfo_vendor_apple:
            return "Apple";
        default:
            return "unknown";
    }
}

// The value of the first "<key>\t: value" line of /proc/cpuinfo ("" if none).
std::string proc_cpuinfo(const std::string &key) {
    std::ifstream f("/proc/cpuinfo");
    for (std::string line; std::getline(f, line);) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        const size_t end = line.find_last_not_of(" \t", colon - 1);
        if (end == std::string::npos || line.compare(0, end + 1, key) != 0 || end + 1 != key.size())
            continue;
        const size_t value = line.find_first_not_of(" \t", colon + 1);
        return value == std::string::npos ? "" : line.substr(value);
    }
    return "";
}

int to_int(const std::string &s) { return s.empty() ? 0 : std::atoi(s.c_str()); }

uint64_t cache_size(const cpuinfo_cache *c) { return c ? c->size : 0; }

uint64_t sysconf_size(int name) {
    long v = sysconf(name);
    return v > 0 ? uint64_t(v) : 0;
}

}  // namespace

std::string slug(const std::string &text) {
    std::string s;
    for (char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c)))
            s += char(std::tolower(static_cast<unsigned char>(c)));
        else if (!s.empty() && s.back() != '-')
            s += '-';
    }
    while (!s.empty() && s.back() == '-') s.pop_back();
    return s.empty() ? "unknown" : s;
}

CpuIdentity detect_cpu() {
    CpuIdentity c;
    if (cpuinfo_initialize()) {
        const cpuinfo_package *pkg = cpuinfo_get_package(0);
        const cpuinfo_core *core = cpuinfo_get_core(0);
        c.vendor = core ? vendor_name(core->vendor) : "unknown";
        c.name = pkg ? pkg->name : "";
#if CPUINFO_ARCH_X86 || CPUINFO_ARCH_X86_64
        if (core) {
            const uint32_t id = core->cpuid;
            const int base_family = int((id >> 8) & 0xf), base_model = int((id >> 4) & 0xf);
            c.family = base_family == 0xf ? base_family + int((id >> 20) & 0xff) : base_family;
            c.model = (base_family == 0x6 || base_family == 0xf)
                          ? base_model | int(((id >> 16) & 0xf) << 4)
                          : base_model;
        }
        const std::pair<const char *, bool> isa[] = {
            {"sse4_1", cpuinfo_has_x86_sse4_1()},
            {"popcnt", cpuinfo_has_x86_popcnt()},
            {"avx", cpuinfo_has_x86_avx()},
            {"avx2", cpuinfo_has_x86_avx2()},
            {"fma", cpuinfo_has_x86_fma3()},
            {"f16c", cpuinfo_has_x86_f16c()},
            {"avx512f", cpuinfo_has_x86_avx512f()},
            {"avx512bw", cpuinfo_has_x86_avx512bw()},
            {"avx512dq", cpuinfo_has_x86_avx512dq()},
            {"avx512vl", cpuinfo_has_x86_avx512vl()},
            {"avx512vnni", cpuinfo_has_x86_avx512vnni()},
            {"avx512bitalg", cpuinfo_has_x86_avx512bitalg()},
            {"avx512vpopcntdq", cpuinfo_has_x86_avx512vpopcntdq()}};
        for (const auto &[name, on] : isa)
            if (on) c.features.push_back(name);
#endif
        c.l1d_bytes = cache_size(cpuinfo_get_l1d_cache(0));
        c.l2_bytes = cache_size(cpuinfo_get_l2_cache(0));
        c.l3_bytes = cache_size(cpuinfo_get_l3_cache(0));
    } else {
        c.vendor = "unknown";
    }
    // The id from /proc/cpuinfo, where CMake can compute it too (docs/TUNING.md).
    const std::string model_name = proc_cpuinfo("model name");
    if (c.name.empty()) c.name = model_name;
    if (!proc_cpuinfo("cpu family").empty()) {
        c.family = to_int(proc_cpuinfo("cpu family"));
        c.model = to_int(proc_cpuinfo("model"));
    }
    if (!c.l1d_bytes && !c.l2_bytes && !c.l3_bytes) {
        c.l1d_bytes = sysconf_size(_SC_LEVEL1_DCACHE_SIZE);
        c.l2_bytes = sysconf_size(_SC_LEVEL2_CACHE_SIZE);
        c.l3_bytes = sysconf_size(_SC_LEVEL3_CACHE_SIZE);
    }
    c.id = slug(model_name.empty() ? c.vendor + " " + c.name : model_name) + "-f" +
           std::to_string(c.family) + "m" + std::to_string(c.model);
    return c;
}

nlohmann::ordered_json CpuIdentity::to_json() const {
    return {{"id", id},
            {"vendor", vendor},
            {"name", name},
            {"family", family},
            {"model", model},
            {"features", features},
            {"l1d_bytes", l1d_bytes},
            {"l2_bytes", l2_bytes},
            {"l3_bytes", l3_bytes}};
}

CpuIdentity CpuIdentity::from_json(const nlohmann::json &j) {
    CpuIdentity c;
    try {
        c.id = j.at("id").get<std::string>();
        c.vendor = j.at("vendor").get<std::string>();
        c.name = j.at("name").get<std::string>();
        c.family = j.at("family").get<int>();
        c.model = j.at("model").get<int>();
        c.features = j.at("features").get<std::vector<std::string>>();
        c.l1d_bytes = j.at("l1d_bytes").get<uint64_t>();
        c.l2_bytes = j.at("l2_bytes").get<uint64_t>();
        c.l3_bytes = j.at("l3_bytes").get<uint64_t>();
    } catch (const nlohmann::json::exception &e) {
        throw std::runtime_error(std::string("cpu: ") + e.what());
    }
    return c;
}

}  // namespace amq::tune
