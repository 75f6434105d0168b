// The inputs file of `amq run`: a safetensors file with one tensor 'x' (F32
// [T, B, input_size]) for a model without embedding, or 'tokens' (I64 [T, B],
// each in 0..vocab_size-1) for a language model; optionally the initial state
// 'h0' (F32 [layers * D, B, h_size]) and 'c0' (LSTM: F32 [layers * D, B,
// hidden_size]), in PyTorch's layout (amq/rnn.h: Session::set_state), and
// 'lengths' (I64 [B], each 1..T: sequences of different lengths, as
// pack_padded_sequence); other tensors are ignored.
// RunInputs checks the header against the model's sizes when it opens the file,
// then hands out steps a chunk at a time, checking each value as it is read (x
// finite, tokens in range), so that a sequence longer than memory is read with a
// buffer of one chunk. Every problem is an st::FormatError naming the file, the
// tensor and, for a value, its step and sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "amq/model.h"
#include "amq/safetensors.h"

namespace amq {

class RunInputs {
public:
    // Reads and checks the header of the file at `path` (not its data).
    static RunInputs open(const std::string &path, const RnnShape &shape);
    // The same for the bytes of a file; `label` names it in messages.
    static RunInputs from_bytes(std::vector<uint8_t> bytes, const std::string &label,
                                const RnnShape &shape);

    const std::string &label() const { return label_; }
    bool tokens() const { return tokens_; }  // 'tokens' (else 'x')
    size_t steps() const { return T_; }      // T
    size_t batch() const { return B_; }      // B
    size_t width() const { return W_; }      // values per step and sequence

    // Steps [t0, t0 + n) of 'x' into out [n][B][input_size]; throws FormatError
    // at the first value that is not finite.
    void read_x(size_t t0, size_t n, float *out) const;
    // Steps [t0, t0 + n) of 'tokens' into out [n][B]; throws FormatError at the
    // first id outside 0..vocab_size-1.
    void read_tokens(size_t t0, size_t n, int64_t *out) const;

    // The optional tensors, read and checked (finite; lengths in 1..T) when the
    // file is opened; empty when the file does not have them.
    const std::vector<float> &h0() const { return h0_; }
    const std::vector<float> &c0() const { return c0_; }
    const std::vector<int64_t> &lengths() const { return lengths_; }

private:
    RunInputs() = default;
    void check(const std::vector<st::TensorInfo> &tensors, const RnnShape &shape);
    // Checks the shapes of h0, c0 and lengths, then reads them with read_tensor
    // (which copies a tensor's bytes) and checks their values.
    template <class ReadTensor>
    void read_optional(const std::vector<st::TensorInfo> &tensors, const RnnShape &shape,
                       ReadTensor read_tensor);
    void read(size_t t0, size_t n, void *out, size_t elem) const;
    [[noreturn]] void fail(const std::string &what) const;

    std::string label_;
    bool tokens_ = false;
    size_t T_ = 0, B_ = 0, W_ = 0;
    uint64_t vocab_ = 0;
    uint64_t data_offset_ = 0;    // of the tensor: in the file, or in bytes_
    std::vector<uint8_t> bytes_;  // from_bytes: the whole file
    bool in_memory_ = false;
    std::vector<float> h0_, c0_;
    std::vector<int64_t> lengths_;
};

}  // namespace amq
