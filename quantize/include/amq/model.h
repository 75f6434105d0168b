// The model-level view of amq's model files (docs/MODEL_FORMAT.md): a float
// model (a PyTorch nn.LSTM / nn.GRU state_dict, plus embedding and decoder for a
// language model) or a quantized .amq model, both safetensors containers.
//
// load_model checks everything the format requires and throws
// amq::st::FormatError naming the file and the tensor or metadata key;
// save_model refuses (std::invalid_argument) a ModelFile that load_model would.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "amq/quant_tensor.h"
#include "amq/safetensors.h"

namespace amq {

enum class Arch { lstm, gru };

const char *arch_name(Arch arch);  // "lstm" / "gru"

struct RnnShape {
    Arch arch = Arch::lstm;
    int layers = 0;
    size_t input_size = 0;   // input width of layer 0 (embedding width of an LM)
    size_t hidden_size = 0;  // hidden width of every layer
    size_t vocab_size = 0;   // 0 = no embedding / decoder (not a language model)
    bool tied = false;       // LM: the decoder reuses embedding.weight
    bool bias = true;        // bias_ih_lL / bias_hh_lL present
    // Two directions per layer (PyTorch's bidirectional=True): the reverse
    // direction's tensors are named weight_ih_lL_reverse, ...; a layer's output
    // is the forward h followed by the reverse h.
    bool bidirectional = false;
    // LSTM only (PyTorch's proj_size): 0 = none, else h_t = W_hr (o * tanh(c_t))
    // with weight_hr_lL [proj_size, hidden_size], and 0 < proj_size < hidden_size.
    size_t proj_size = 0;

    int gates() const { return arch == Arch::lstm ? 4 : 3; }
    bool lm() const { return vocab_size > 0; }
    int directions() const { return bidirectional ? 2 : 1; }
    // Width of h of one direction (PyTorch's H_out): proj_size, or hidden_size.
    size_t h_size() const { return proj_size ? proj_size : hidden_size; }
    // Width of a layer's output per step: directions() * h_size().
    size_t output_size() const { return size_t(directions()) * h_size(); }
    // Input width of layer `layer`: input_size for layer 0, output_size() after.
    size_t layer_input(int layer) const { return layer == 0 ? input_size : output_size(); }
};

struct FloatTensor {
    std::vector<int64_t> shape;
    std::vector<float> data;  // row-major, product(shape) elements
};

struct ModelFile {
    RnnShape shape;
    // Metadata keys the format does not define (e.g. perplexity_test), kept as
    // they are. The keys of the format come from the fields of Model.
    std::map<std::string, std::string> metadata;
    std::vector<std::string> vocab;  // LM: the words in id order (may be empty)
    // Float tensors by name: in a float model every tensor; in an .amq the
    // biases and the embedding / decoder when they are not quantized.
    std::map<std::string, FloatTensor> floats;
    // Quantized weight matrices by matrix name (weight_hh_l0, ...), .amq only.
    std::map<std::string, QuantTensor> quant;
    // .amq only: bits, weight quantizer and online activation quantizer.
    int k_w = 0, k_a = 0, iters = 0, act_iters = 2;
    std::string method, act_method = "alternating";

    bool quantized() const { return !quant.empty(); }
};

// Loads and checks a float model or an .amq (told apart by the `format`
// metadata; a state_dict without metadata is a float model whose sizes come
// from its tensors). Throws std::runtime_error when the file cannot be read
// and amq::st::FormatError when it breaks the format.
ModelFile load_model(const std::string &path);
// The same for the bytes of a file; `label` names it in messages.
ModelFile load_model_from_bytes(std::vector<uint8_t> bytes, const std::string &label);
// The model from an opened container.
ModelFile load_model(const st::Reader &reader);

// Writes `model` as an .amq when model.quantized(), else as a float model
// (atomically: a temporary file renamed over `path`). Throws
// std::invalid_argument naming the tensor or field when the model is not one
// load_model accepts, std::runtime_error when the file cannot be written.
void save_model(const std::string &path, const ModelFile &model);
// The container save_model writes (to write it or to get its bytes).
st::Writer model_writer(const ModelFile &model);

// PyTorch's name of a per-layer tensor: layer_tensor_name("weight_ih", 1, 1) is
// "weight_ih_l1_reverse" (direction 1 = reverse).
std::string layer_tensor_name(const std::string &base, int layer, int direction);

// What a weight matrix computes.
enum class MatrixRole { input, recurrent, projection, embedding, decoder };

// One weight matrix of a network, as the runner multiplies it.
struct MatrixInfo {
    std::string name;  // the state_dict's: weight_ih_l0, weight_hr_l1_reverse, decoder.weight
    size_t rows = 0, cols = 0;
    MatrixRole role = MatrixRole::input;
    int layer = -1;     // -1 for the embedding and the decoder
    int direction = 0;  // 1 = the reverse direction of a bidirectional layer
};

// The weight matrices of a network in file order: for every layer and
// direction weight_ih, weight_hh and (projected LSTM) weight_hr, then
// (include_lm and a language model) embedding.weight and, unless tied,
// decoder.weight. The one list `amq quantize`, `amq tune --model`, `amq
// generate --model` and the runner go by.
std::vector<MatrixInfo> weight_matrices(const RnnShape &shape, bool include_lm);
// The names of weight_matrices(shape, include_lm).
std::vector<std::string> weight_matrix_names(const RnnShape &shape, bool include_lm);
// The names of the recurrent network's matrices (weight_matrices without the LM's).
std::vector<std::string> rnn_matrix_names(const RnnShape &shape);
// {rows, cols} of a weight matrix of `shape`; throws std::invalid_argument for a
// name that is not one of weight_matrix_names(shape, true).
std::pair<size_t, size_t> matrix_dims(const RnnShape &shape, const std::string &name);

}  // namespace amq
