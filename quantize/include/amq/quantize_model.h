// A whole float model -> a quantized model (.amq): what `amq quantize` does.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "amq/model.h"
#include "amq/quantizers.h"

namespace amq {

struct ModelQuantizeOptions {
    QuantizeOptions weights;                 // method, k_w = weights.bits, T, threads, init
    int k_a = 2;                             // activation bits of the runner
    std::string act_method = "alternating";  // or "greedy", "ternary" (k_a = 2)
    int act_iters = 2;                       // activation cycles T (alternating)
    bool lm_parts = false;                   // also quantize embedding and decoder
    // Bits of single matrices by name (amq quantize --bits-for NAME=WxA): weight
    // bits k_w, and k_a / act_method of the vector the matrix multiplies
    // (act_method "" = the model's). A named embedding or decoder is quantized
    // even when lm_parts is false. Recorded in the .amq's matrix_bits.
    std::map<std::string, MatrixBits> bits_for;
};

struct TensorError {
    std::string name;
    size_t rows = 0, cols = 0;
    ErrorSums error;
};

// The matrices a quantized model stores as planes: weight_ih_lL, weight_hh_lL,
// plus the embedding and decoder when lm_parts, plus those named in `bits_for`.
std::vector<std::string> matrices_to_quantize(const ModelFile &m, bool lm_parts,
                                              const std::map<std::string, MatrixBits> &bits_for = {});

// Quantizes a float model. The result keeps the float model's biases, metadata and
// vocabulary. `errors`, if given, receives each matrix's error. Throws
// std::invalid_argument naming the option or the tensor.
ModelFile quantize_model(const ModelFile &float_model, const ModelQuantizeOptions &opt,
                         std::vector<TensorError> *errors = nullptr);

}  // namespace amq
