// A whole float model -> a quantized model: see amq/quantize_model.h.
#include "amq/quantize_model.h"

#include <algorithm>
#include <stdexcept>

namespace amq {

namespace {

std::string join(const std::vector<std::string> &v) {
    std::string s;
    for (const std::string &n : v) s += (s.empty() ? "" : ", ") + n;
    return s;
}

void check_act(const std::string &where, int k_a, const std::string &act_method) {
    if (k_a < 1 || k_a > ref::kMaxBits)
        throw std::invalid_argument(where + "k_a = " + std::to_string(k_a) + ", expected 1..4");
    const std::vector<std::string> &methods = act_method_names();
    if (std::find(methods.begin(), methods.end(), act_method) == methods.end())
        throw std::invalid_argument(where + "act_method '" + act_method + "', expected one of " +
                                    join(methods));
    if (act_method == "ternary" && k_a != 2)
        throw std::invalid_argument(where + "k_a = " + std::to_string(k_a) +
                                    " with act_method ternary, which stores 2 planes (expected 2)");
}

}  // namespace

std::vector<std::string> matrices_to_quantize(const ModelFile &m, bool lm_parts,
                                              const std::map<std::string, MatrixBits> &bits_for) {
    std::vector<std::string> names;
    const std::vector<std::string> rnn = rnn_matrix_names(m.shape);
    for (const std::string &n : weight_matrix_names(m.shape, true))
        if (lm_parts || bits_for.count(n) ||
            std::find(rnn.begin(), rnn.end(), n) != rnn.end())
            names.push_back(n);
    return names;
}

ModelFile quantize_model(const ModelFile &float_model, const ModelQuantizeOptions &opt,
                         std::vector<TensorError> *errors) {
    if (float_model.quantized())
        throw std::invalid_argument("quantize_model: the model is already quantized (k_w = " +
                                    std::to_string(float_model.k_w) + ")");
    check_act("quantize_model: ", opt.k_a, opt.act_method);
    const std::vector<std::string> all = weight_matrix_names(float_model.shape, true);
    std::map<std::string, MatrixBits> bits_for;
    bool alternating = opt.act_method == "alternating";
    for (const auto &[name, given] : opt.bits_for) {
        if (std::find(all.begin(), all.end(), name) == all.end())
            throw std::invalid_argument("bits for '" + name +
                                        "': the model has no such weight matrix (its matrices: " +
                                        join(all) + ")");
        MatrixBits b = given;
        if (b.act_method.empty()) b.act_method = opt.act_method;
        if (b.k_w < 1 || b.k_w > ref::kMaxBits)
            throw std::invalid_argument("bits for '" + name + "': k_w = " + std::to_string(b.k_w) +
                                        ", expected 1..4");
        check_act("bits for '" + name + "': ", b.k_a, b.act_method);
        alternating = alternating || b.act_method == "alternating";
        bits_for[name] = b;
    }
    ModelFile m = float_model;
    for (const std::string &name : matrices_to_quantize(m, opt.lm_parts, bits_for)) {
        const auto [rows, cols] = matrix_dims(m.shape, name);
        const std::vector<float> &w = m.floats.at(name).data;
        QuantizeOptions wo = opt.weights;
        if (auto b = bits_for.find(name); b != bits_for.end()) wo.bits = b->second.k_w;
        QuantTensor q;
        try {
            q = quantize_matrix(w.data(), rows, cols, wo);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument("tensor '" + name + "': " + e.what());
        }
        if (errors) errors->push_back({name, rows, cols, quantization_error(w.data(), q)});
        m.floats.erase(name);
        m.quant[name] = std::move(q);
    }
    m.k_w = opt.weights.bits;
    m.k_a = opt.k_a;
    m.method = method_name(opt.weights.method);
    m.iters = opt.weights.method == Method::alternating ? opt.weights.iters : 0;
    m.act_method = opt.act_method;
    m.act_iters = alternating ? opt.act_iters : 0;
    m.matrix_bits = bits_for;
    if (opt.weights.method == Method::alternating)
        m.metadata["alternating_init"] = init_name(opt.weights.init);
    return m;
}

}  // namespace amq
