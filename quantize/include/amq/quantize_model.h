// A whole float model -> a quantized model (.amq): what `amq quantize` does.
#pragma once

#include <string>
#include <vector>

#include "amq/model.h"
#include "amq/quantizers.h"

namespace amq {

struct ModelQuantizeOptions {
    QuantizeOptions weights;                 // method, k_w = weights.bits, T, threads, init
    int k_a = 2;                             // activation bits of the runner
    std::string act_method = "alternating";  // or "greedy"
    int act_iters = 2;                       // activation cycles T (alternating)
    bool lm_parts = false;                   // also quantize embedding and decoder
};

struct TensorError {
    std::string name;
    size_t rows = 0, cols = 0;
    ErrorSums error;
};

// The matrices a quantized model stores as planes: weight_ih_lL, weight_hh_lL,
// plus the embedding and decoder when lm_parts.
std::vector<std::string> matrices_to_quantize(const ModelFile &m, bool lm_parts);

// Quantizes a float model. The result keeps the float model's biases, metadata and
// vocabulary. `errors`, if given, receives each matrix's error. Throws
// std::invalid_argument naming the option or the tensor.
ModelFile quantize_model(const ModelFile &float_model, const ModelQuantizeOptions &opt,
                         std::vector<TensorError> *errors = nullptr);

}  // namespace amq
