#include "amq/autotune/knobs.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "builtin_data.h"

namespace amq::tune {

std::string knobs_key(const Knobs &knobs) { return knobs.dump(); }

std::string knobs_str(const Knobs &knobs) {
    std::string s;
    for (const auto &[name, value] : knobs.items())
        s += (s.empty() ? "" : " ") + name + "=" +
             (value.is_string() ? value.get<std::string>() : value.dump());
    return s;
}

namespace {

[[noreturn]] void bad(const std::string &origin, const std::string &what) {
    throw std::runtime_error("knob space " + origin + ": " + what);
}

}  // namespace

KnobSpace KnobSpace::parse(const std::string &text, const std::string &origin) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        bad(origin, std::string("not valid JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad(origin, "expected a JSON object");
    if (j.value("format", "") != "amq-knob-space")
        bad(origin, "\"format\" is not \"amq-knob-space\"");
    if (!j.contains("version") || j["version"] != 1)
        bad(origin, "\"version\" is not 1 (the only version this amq reads)");
    if (!j.contains("pipeline") || !j["pipeline"].is_string() ||
        j["pipeline"].get<std::string>().empty())
        bad(origin, "\"pipeline\" must be a non-empty string");
    if (!j.contains("knobs") || !j["knobs"].is_array() || j["knobs"].empty())
        bad(origin, "\"knobs\" must be a non-empty array");
    KnobSpace s;
    s.pipeline_ = j["pipeline"].get<std::string>();
    std::set<std::string> names;
    for (size_t k = 0; k < j["knobs"].size(); ++k) {
        const auto &d = j["knobs"][k];
        const std::string where = "knob #" + std::to_string(k + 1);
        if (!d.is_object() || !d.contains("name") || !d["name"].is_string() ||
            d["name"].get<std::string>().empty())
            bad(origin, where + ": expected an object with a non-empty \"name\"");
        KnobDef def;
        def.name = d["name"].get<std::string>();
        def.about = d.value("about", "");
        if (!names.insert(def.name).second) bad(origin, "knob '" + def.name + "' is listed twice");
        if (!d.contains("values") || !d["values"].is_array() || d["values"].empty())
            bad(origin, "knob '" + def.name + "': \"values\" must be a non-empty array");
        std::set<std::string> seen;
        for (const auto &v : d["values"]) {
            if (!v.is_number_integer() && !v.is_string())
                bad(origin, "knob '" + def.name + "': value " + v.dump() +
                                " is neither an integer nor a string");
            if (!seen.insert(v.dump()).second)
                bad(origin, "knob '" + def.name + "': value " + v.dump() + " is listed twice");
            def.values.push_back(v);
        }
        s.knobs_.push_back(std::move(def));
    }
    return s;
}

const KnobDef *KnobSpace::find(const std::string &name) const {
    for (const auto &k : knobs_)
        if (k.name == name) return &k;
    return nullptr;
}

uint64_t KnobSpace::size() const {
    uint64_t n = 1;
    for (const auto &k : knobs_) n *= k.values.size();
    return n;
}

Knobs KnobSpace::at(uint64_t index) const {
    Knobs out = Knobs::object();
    for (size_t k = knobs_.size(); k-- > 0;) {
        const auto &vals = knobs_[k].values;
        out[knobs_[k].name] = vals[index % vals.size()];
        index /= vals.size();
    }
    return out;
}

Knobs KnobSpace::sample(std::mt19937_64 &rng) const {
    Knobs out = Knobs::object();
    for (const auto &k : knobs_)
        out[k.name] = k.values[std::uniform_int_distribution<size_t>(0, k.values.size() - 1)(rng)];
    return out;
}

Knobs KnobSpace::mutate(const Knobs &knobs, std::mt19937_64 &rng) const {
    Knobs out = knobs;
    // One or two distinct knobs change.
    std::vector<size_t> order(knobs_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    const size_t changes =
        std::min<size_t>(order.size(), std::uniform_int_distribution<size_t>(1, 2)(rng));
    for (size_t c = 0; c < changes; ++c) {
        const KnobDef &k = knobs_[order[c]];
        const size_t n = k.values.size();
        if (n < 2) continue;
        size_t at = 0;
        while (at < n && k.values[at] != out[k.name]) ++at;
        if (at == n) at = 0;
        size_t next;
        if (k.values[0].is_string()) {  // categories: any other value
            next = (at + std::uniform_int_distribution<size_t>(1, n - 1)(rng)) % n;
        } else {  // ordered values: a neighbour
            const bool up =
                at == 0 || (at + 1 < n && std::uniform_int_distribution<int>(0, 1)(rng));
            next = up ? at + 1 : at - 1;
        }
        out[k.name] = k.values[next];
    }
    return out;
}

std::string KnobSpace::check(const Knobs &knobs) const {
    if (!knobs.is_object()) return "knobs must be a JSON object";
    for (const auto &k : knobs_) {
        if (!knobs.contains(k.name)) return "knob '" + k.name + "' is missing";
        bool listed = false;
        for (const auto &v : k.values) listed = listed || v == knobs[k.name];
        if (!listed)
            return "knob '" + k.name + "' = " + knobs[k.name].dump() +
                   " is not one of the space's values";
    }
    for (const auto &[name, value] : knobs.items())
        if (!find(name)) return "'" + name + "' is not a knob of " + pipeline_;
    return "";
}

const KnobSpace &builtin_space(const std::string &pipeline) {
    static std::mutex mu;
    static std::map<std::string, KnobSpace> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(pipeline);
    if (it != cache.end()) return it->second;
    for (const auto &[name, text] : detail::builtin_spaces())
        if (name == pipeline) {
            KnobSpace s = KnobSpace::parse(text, "autotune/spaces/" + name + ".json");
            if (s.pipeline() != pipeline)
                throw std::runtime_error("knob space autotune/spaces/" + name +
                                         ".json: \"pipeline\" is '" + s.pipeline() + "'");
            return cache.emplace(pipeline, std::move(s)).first->second;
        }
    std::string known;
    for (const auto &[name, text] : detail::builtin_spaces())
        known += (known.empty() ? "" : ", ") + name;
    throw std::runtime_error("no knob space for pipeline '" + pipeline + "' (spaces: " + known +
                             ")");
}

nlohmann::json hand_defaults_all() {
    static const nlohmann::json all = [] {
        nlohmann::json j = nlohmann::json::parse(detail::builtin_defaults());
        return j.at("pipelines");
    }();
    return all;
}

Knobs hand_defaults(const std::string &pipeline) {
    const nlohmann::json all = hand_defaults_all();
    if (!all.contains(pipeline))
        throw std::runtime_error("schedules/defaults.json has no knobs for pipeline '" + pipeline +
                                 "'");
    return all[pipeline];
}

std::vector<std::string> runtime_knobs(const std::string &pipeline) {
    static const nlohmann::json all = nlohmann::json::parse(detail::builtin_defaults()).at("runtime");
    return all.contains(pipeline) ? all.at(pipeline).get<std::vector<std::string>>()
                                  : std::vector<std::string>{};
}

bool holds_runtime_knobs(const std::string &pipeline, const Knobs &knobs, const Knobs &top) {
    for (const std::string &k : runtime_knobs(pipeline))
        if (knobs.contains(k) && top.contains(k) && knobs.at(k) != top.at(k)) return false;
    return true;
}

}  // namespace amq::tune
