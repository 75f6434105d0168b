// Knob spaces as data: the schedule knobs of one pipeline and the values the
// tuner tries (autotune/spaces/<pipeline>.json), and one point of such a space.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace amq::tune {

// One set of knob values: an object from knob name to value (an integer or a
// string). nlohmann::json keeps the keys sorted, so equal sets dump equally.
using Knobs = nlohmann::json;

// Compact JSON of the knobs, usable as a map key ({"layout":"tiled","tile":8}).
std::string knobs_key(const Knobs &knobs);
// "layout=tiled tile=8 unroll_words=1" for messages and the progress line.
std::string knobs_str(const Knobs &knobs);

struct KnobDef {
    std::string name, about;
    std::vector<nlohmann::json> values;  // integers or strings, no duplicates
};

class KnobSpace {
public:
    // Parses a knob space file's text; `origin` (a file name) is named in errors.
    // Throws std::runtime_error saying what is wrong and where.
    static KnobSpace parse(const std::string &text, const std::string &origin);

    const std::string &pipeline() const { return pipeline_; }
    const std::vector<KnobDef> &knobs() const { return knobs_; }
    const KnobDef *find(const std::string &name) const;

    // Number of points (the product of the value counts).
    uint64_t size() const;
    // The point with this index in [0, size()), the first knob varying slowest.
    Knobs at(uint64_t index) const;
    // A uniformly random point.
    Knobs sample(std::mt19937_64 &rng) const;
    // A neighbour: one or two knobs moved to an adjacent value (integers) or
    // another value (strings).
    Knobs mutate(const Knobs &knobs, std::mt19937_64 &rng) const;
    // "" if `knobs` sets every knob of the space to one of its values and
    // nothing else; otherwise what is wrong.
    std::string check(const Knobs &knobs) const;

private:
    std::string pipeline_;
    std::vector<KnobDef> knobs_;
};

// The knob space of `pipeline` shipped with amq (built into the library from
// autotune/spaces/<pipeline>.json). Throws if there is none.
const KnobSpace &builtin_space(const std::string &pipeline);

// The hand defaults of `pipeline` from schedules/defaults.json (built in).
Knobs hand_defaults(const std::string &pipeline);
// The whole "pipelines" object of schedules/defaults.json.
nlohmann::json hand_defaults_all();
// The knobs of `pipeline` that the manifest marks "runtime": the runtime packs
// weights or plans batches by them, so every ISA variant of a library has the
// top variant's values (a lower variant is tuned with them held).
std::vector<std::string> runtime_knobs(const std::string &pipeline);
// Whether `knobs` has `top`'s value of each runtime knob of `pipeline`.
bool holds_runtime_knobs(const std::string &pipeline, const Knobs &knobs, const Knobs &top);

}  // namespace amq::tune
