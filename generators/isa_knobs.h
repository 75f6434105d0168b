// Knobs per ISA variant inside one multi-target library.
//
// Halide builds every ISA variant of a multi-target library from the same
// generator params, running generate() once per variant with get_target() set
// to it. The param isa_knobs carries the knobs in which the lower variants
// differ from the top one, as cmake/amqManifest.cmake and `amq generate` write
// it from the schedules file's "isa" section:
//
//     isa_knobs=avx2/unroll_words:4,parallel_tiles:64+sse41/unroll_words:2
//
// and a generator reads each knob through IsaKnobs, which gives the variant
// being generated its own value. Knobs the runtime depends on (the weight
// layout, bgemm's batch plan: "runtime": true in schedules/manifest.json) are
// never in isa_knobs; the configure refuses a schedules file that differs there.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "Halide.h"

namespace amq::gen {

// The manifest's name of the ISA variant a target is: "avx512", "avx2", "sse41".
inline std::string isa_name_of(const Halide::Target &t) {
    if (t.has_feature(Halide::Target::AVX512)) return "avx512";
    if (t.has_feature(Halide::Target::AVX2)) return "avx2";
    return "sse41";
}

class IsaKnobs {
public:
    IsaKnobs(const std::string &spec, const Halide::Target &target, const char *generator)
        : generator_(generator), isa_(isa_name_of(target)) {
        for (const std::string &section : split(spec, '+')) {
            const size_t slash = section.find('/');
            if (slash == std::string::npos || slash == 0)
                bad("section '" + section + "' is not ISA/knob:value,...");
            const std::string isa = section.substr(0, slash);
            if (isa != "avx512" && isa != "avx2" && isa != "sse41")
                bad("'" + isa + "' is not an ISA variant (avx512, avx2, sse41)");
            for (const std::string &kv : split(section.substr(slash + 1), ',')) {
                const size_t colon = kv.find(':');
                if (colon == std::string::npos || colon == 0 || colon + 1 == kv.size())
                    bad("'" + kv + "' in the " + isa + " section is not knob:value");
                const std::string name = kv.substr(0, colon);
                all_.insert(name);
                if (isa == isa_) values_[name] = kv.substr(colon + 1);
            }
        }
    }

    // This variant's value of the knob: its isa_knobs entry, else `value`.
    int get(const std::string &name, int value) {
        read_.insert(name);
        const auto it = values_.find(name);
        if (it == values_.end()) return value;
        try {
            size_t end = 0;
            const int v = std::stoi(it->second, &end);
            if (end == it->second.size()) return v;
        } catch (const std::exception &) {
        }
        bad("knob " + name + " = '" + it->second + "' is not an integer");
    }
    std::string get(const std::string &name, const std::string &value) {
        read_.insert(name);
        const auto it = values_.find(name);
        return it == values_.end() ? value : it->second;
    }

    // Call after every get(): a knob in isa_knobs that the generator never read
    // (a misspelling, or a knob of another pipeline) is an error.
    void done() const {
        for (const std::string &name : all_)
            if (!read_.count(name)) bad("no knob '" + name + "' in this generator");
    }

    const std::string &isa() const { return isa_; }

private:
    static std::vector<std::string> split(const std::string &s, char sep) {
        std::vector<std::string> out;
        size_t start = 0;
        while (start < s.size()) {
            const size_t end = std::min(s.find(sep, start), s.size());
            if (end > start) out.push_back(s.substr(start, end - start));
            start = end + 1;
        }
        return out;
    }
    [[noreturn]] void bad(const std::string &what) const {
        throw std::invalid_argument(std::string(generator_) + " generator: isa_knobs: " + what);
    }

    const char *generator_;
    std::string isa_;
    std::map<std::string, std::string> values_;
    std::set<std::string> all_, read_;
};

}  // namespace amq::gen
