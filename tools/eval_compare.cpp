// amq eval --compare: one accuracy-and-speed table of a language model over
// quantization configurations, all measured in the same run (see lm_eval.h).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "amq/quantize_model.h"
#include "commands.h"
#include "lm_eval.h"

namespace amq::tools {
namespace {

// A configuration: a label and either options to quantize the float model with
// or a model file to load.
struct Config {
    std::string label, path;
    bool quantize = false;
    ModelQuantizeOptions options;
};

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    std::string part;
    std::istringstream in(s);
    while (std::getline(in, part, sep)) out.push_back(part);
    return out;
}

// "float" | "wWaA" | "ternary", then ",lm", ",lm=WxA[:METHOD]" (embedding and
// decoder at those bits), ",act=METHOD", ",NAME=WxA[:METHOD]".
Config parse_config(const std::string &text, const RnnShape &shape) {
    const std::vector<std::string> parts = split(text, ',');
    const std::string opt = "--config '" + text + "'";
    if (parts.empty()) throw UsageError(opt + ": empty");
    Config c;
    c.label = text;
    const std::string &base = parts[0];
    if (base == "float") {
        if (parts.size() > 1) throw UsageError(opt + ": 'float' takes no options");
        return c;
    }
    c.quantize = true;
    ModelQuantizeOptions &o = c.options;
    o.weights.threads = 0;
    if (base == "ternary") {
        o.weights.method = Method::ternary;
        o.weights.bits = 2;
        o.k_a = 2;
        o.act_method = "ternary";
    } else {
        const spec::Bits b = parse_bits(opt, base);
        o.weights.bits = b.w;
        o.k_a = b.a;
    }
    std::vector<std::string> bits_for;
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string &p = parts[i];
        if (p == "lm") {
            o.lm_parts = true;
        } else if (p.rfind("lm=", 0) == 0) {  // the embedding and the decoder (if untied)
            for (const std::string &name : weight_matrix_names(shape, true))
                if (name == "embedding.weight" || name == "decoder.weight")
                    bits_for.push_back(name + "=" + p.substr(3));
        } else if (p.rfind("act=", 0) == 0) {
            o.act_method = p.substr(4);
            const std::vector<std::string> &m = act_method_names();
            if (std::find(m.begin(), m.end(), o.act_method) == m.end())
                throw UsageError(opt + ": act=" + o.act_method +
                                 ", expected alternating, greedy or ternary");
            if (o.act_method == "ternary" && o.k_a != 2)
                throw UsageError(opt + ": act=ternary needs 2 activation bits (wWa2)");
        } else if (p.find('=') != std::string::npos) {
            bits_for.push_back(p);
        } else {
            throw UsageError(opt + ": unknown part '" + p +
                             "' (expected lm, lm=WxA, act=METHOD or NAME=WxA[:METHOD])");
        }
    }
    o.bits_for = parse_bits_for(bits_for, shape);
    return c;
}

// "LSTM W2A2, embedding W4, decoder W4A4 ternary": the bits of every matrix,
// runs of equal bits merged.
std::string describe_bits(const Model &m) {
    if (!m.quantized()) return "float";
    std::vector<std::pair<std::string, std::string>> parts;
    for (const QuantMatrixInfo &q : m.matrices()) {
        const bool emb = q.name == "embedding.weight" && !m.shape().tied;
        std::string b = "W" + std::to_string(q.bits.k_w);
        if (!emb) b += "A" + std::to_string(q.bits.k_a);
        if (!emb && q.bits.act_method != "alternating") b += " " + q.bits.act_method;
        const std::string who = q.name == "embedding.weight" ? (m.shape().tied ? "emb+dec" : "emb")
                                : q.name == "decoder.weight" ? "dec"
                                                             : "rnn";
        if (!parts.empty() && parts.back().first == who && parts.back().second == b) continue;
        if (!parts.empty() && who == "rnn" && parts.back().first == "rnn") {
            parts.back().second += "/" + b;  // recurrent matrices with different bits
            continue;
        }
        parts.push_back({who, b});
    }
    std::string s;
    for (const auto &[who, b] : parts) s += (s.empty() ? "" : ", ") + who + " " + b;
    const std::vector<QuantMatrixInfo> &q = m.matrices();
    const bool emb = std::any_of(q.begin(), q.end(),
                                 [](const QuantMatrixInfo &i) { return i.name == "embedding.weight"; });
    const bool dec = m.shape().tied ? emb : std::any_of(q.begin(), q.end(), [](const QuantMatrixInfo &i) {
        return i.name == "decoder.weight";
    });
    if (!emb) s += ", emb f32";
    if (!dec && !m.shape().tied) s += ", dec f32";
    return s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

}  // namespace

const std::vector<std::string> &default_compare_configs() {
    static const std::vector<std::string> c = {
        "float",
        "w2a2", "w2a3", "w3a3", "w1a1", "ternary",
        "w2a2,lm", "w2a3,lm", "w3a3,lm", "w1a1,lm", "ternary,lm",
        "w2a2,lm=4x4", "w2a2,lm=3x3", "w2a2,lm=4x2", "w3a3,lm=4x4",
    };
    return c;
}

void run_eval_compare(const CompareArgs &a) {
    const ModelFile float_file = load_model(a.float_model);
    if (float_file.quantized())
        throw UsageError(a.float_model + " is quantized: --compare takes the float model first "
                         "(quantized .amq files may follow it)");
    if (!float_file.shape.lm())
        throw UsageError(a.float_model + " is not a language model (no embedding and decoder)");
    if (a.rounds < 1) throw UsageError("--rounds " + std::to_string(a.rounds) + ": expected >= 1");

    std::vector<Config> configs;
    for (const std::string &c : a.configs.empty() ? default_compare_configs() : a.configs)
        configs.push_back(parse_config(c, float_file.shape));
    for (const std::string &p : a.extra_models) {
        Config c;
        c.label = p;
        c.path = p;
        configs.push_back(c);
    }
    std::vector<std::shared_ptr<const Model>> models;
    for (const Config &c : configs) {
        std::shared_ptr<const Model> m;
        if (!c.path.empty()) {
            m = Model::load(c.path);
            if (m->shape().vocab_size != float_file.shape.vocab_size || m->vocab() != float_file.vocab)
                throw UsageError(c.path + ": its vocabulary is not the float model's");
        } else {
            m = Model::from_file(c.quantize ? quantize_model(float_file, c.options) : float_file);
        }
        models.push_back(m);
    }
    std::vector<int64_t> ids = read_tokens(a.text, float_file.vocab);
    if (a.limit && ids.size() > a.limit + 1) ids.resize(a.limit + 1);

    // Rounds in turn over the configurations: a slower stretch of the shared
    // machine is spread over all of them. Perplexity is the same every round.
    // tokens/s per CPU second of the evaluating thread (one thread: an idle
    // core's figure even when other work shares the machine), and per wall second.
    std::vector<std::vector<double>> speed(configs.size()), wall(configs.size());
    std::vector<LmScore> first(configs.size());
    for (int r = 0; r < a.rounds; ++r)
        for (size_t i = 0; i < configs.size(); ++i) {
            const LmScore s = score_lm(models[i], ids);
            if (r == 0) first[i] = s;
            speed[i].push_back(s.tokens_per_cpu_second());
            wall[i].push_back(s.tokens_per_second());
            std::fprintf(stderr,
                         "amq eval --compare: round %d/%d %-40s perplexity %.2f, %.0f tokens per "
                         "CPU second (%.0f per wall second)\n",
                         r + 1, a.rounds, configs[i].label.c_str(), s.perplexity,
                         s.tokens_per_cpu_second(), s.tokens_per_second());
        }

    // The float model's figures are the baseline (the first float configuration).
    size_t base = configs.size();
    for (size_t i = 0; i < configs.size() && base == configs.size(); ++i)
        if (!models[i]->quantized()) base = i;
    const double ppl0 = base < configs.size() ? first[base].perplexity : 0;
    const double tps0 = base < configs.size() ? median(speed[base]) : 0;

    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    std::ostringstream table;
    table << "| configuration | matrices | MB | perplexity | vs float | tokens/s | speed-up |\n"
          << "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
    long best = -1;
    for (size_t i = 0; i < configs.size(); ++i) {
        const double ppl = first[i].perplexity, tps = median(speed[i]);
        const double dppl = ppl0 > 0 ? ppl / ppl0 - 1 : 0, up = tps0 > 0 ? tps / tps0 : 0;
        const double mb = double(models[i]->weight_bytes()) / 1e6;
        const std::string bits = describe_bits(*models[i]);
        rows.push_back({{"configuration", configs[i].label},
                        {"matrices", bits},
                        {"weight_megabytes", mb},
                        {"perplexity", ppl},
                        {"perplexity_vs_float", dppl},
                        {"tokens_per_second", tps},
                        {"tokens_per_second_rounds", speed[i]},
                        {"tokens_per_wall_second", median(wall[i])},
                        {"speedup_vs_float", up}});
        table << "| " << configs[i].label << " | " << bits << " | " << fixed(mb, 2) << " | "
              << fixed(ppl, 2) << " | " << (i == base ? "" : (dppl >= 0 ? "+" : "") + fixed(100 * dppl, 1) + "%")
              << " | " << fixed(tps, 0) << " | " << (i == base ? "" : fixed(up, 2) + "x") << " |\n";
        if (models[i]->quantized() && dppl <= 0.02 && (best < 0 || tps > median(speed[size_t(best)])))
            best = long(i);
    }
    nlohmann::ordered_json j = {{"float_model", a.float_model},
                                {"text", a.text},
                                {"tokens", first.empty() ? 0 : first[0].tokens},
                                {"threads", 1},
                                {"rounds", a.rounds},
                                {"configurations", rows}};
    j["fastest_within_2_percent"] =
        best < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(configs[size_t(best)].label);
    if (a.json) {
        std::cout << j.dump(2) << "\n";
        return;
    }
    std::cout << table.str() << "\n"
              << "Perplexity over " << (first.empty() ? 0 : first[0].tokens) << " predictions of "
              << a.text << "; tokens/s the median of " << a.rounds
              << " round(s) per CPU second of the one evaluating thread (the step and the "
                 "log-softmax of every token).\n";
    if (best >= 0)
        std::cout << "Fastest within 2% of float perplexity: " << configs[size_t(best)].label << "\n";
    else
        std::cout << "No quantized configuration is within 2% of float perplexity.\n";
}

}  // namespace amq::tools
