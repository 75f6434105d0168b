// Which CPU the tuning ran on (via cpuinfo): records and tuned schedule files
// are keyed by it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace amq::tune {

struct CpuIdentity {
    // File-name safe: the model name of /proc/cpuinfo, lower case, runs of other
    // characters as '-', then "-f<family>m<model>": "amd-epyc-f26m2".
    std::string id;
    std::string vendor, name;           // name: cpuinfo's ("AMD Oxide Virtual Turin-like")
    int family = 0, model = 0;          // x86 CPUID display family and model
    std::vector<std::string> features;  // the ISA extensions the kernels care about
    uint64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;

    nlohmann::ordered_json to_json() const;
    // Throws std::runtime_error naming a missing or mistyped field.
    static CpuIdentity from_json(const nlohmann::json &j);
};

// This machine's CPU. Caches come from cpuinfo, or from glibc (CPUID) where
// cpuinfo found none (virtual machines without /sys/devices/system/cpu/*/cache).
CpuIdentity detect_cpu();

// "AMD EPYC 9R45 (x2)" -> "amd-epyc-9r45-x2".
std::string slug(const std::string &text);

}  // namespace amq::tune
