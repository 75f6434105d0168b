// A whole float model -> a quantized model: see amq/quantize_model.h.
#include "amq/quantize_model.h"

#include <algorithm>
#include <stdexcept>

namespace amq {

std::vector<std::string> matrices_to_quantize(const ModelFile &m, bool lm_parts) {
    std::vector<std::string> names = rnn_matrix_names(m.shape);
    if (lm_parts)
        for (const std::string &n : weight_matrix_names(m.shape, true))
            if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    return names;
}

ModelFile quantize_model(const ModelFile &float_model, const ModelQuantizeOptions &opt,
                         std::vector<TensorError> *errors) {
    if (float_model.quantized())
        throw std::invalid_argument("quantize_model: the model is already quantized (k_w = " +
                                    std::to_string(float_model.k_w) + ")");
    if (opt.k_a < 1 || opt.k_a > ref::kMaxBits)
        throw std::invalid_argument("quantize_model: k_a = " + std::to_string(opt.k_a) +
                                    ", expected 1..4");
    if (opt.act_method != "alternating" && opt.act_method != "greedy")
        throw std::invalid_argument("quantize_model: act_method '" + opt.act_method +
                                    "', expected alternating or greedy");
    ModelFile m = float_model;
    for (const std::string &name : matrices_to_quantize(m, opt.lm_parts)) {
        const auto [rows, cols] = matrix_dims(m.shape, name);
        const std::vector<float> &w = m.floats.at(name).data;
        QuantTensor q;
        try {
            q = quantize_matrix(w.data(), rows, cols, opt.weights);
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
    m.act_iters = opt.act_method == "alternating" ? opt.act_iters : 0;
    if (opt.weights.method == Method::alternating)
        m.metadata["alternating_init"] = init_name(opt.weights.init);
    return m;
}

}  // namespace amq
