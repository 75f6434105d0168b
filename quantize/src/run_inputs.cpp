#include "amq/run_inputs.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace amq {

RunInputs RunInputs::open(const std::string &path, const RnnShape &shape) {
    const st::Header h = st::read_header(path);
    RunInputs r;
    r.label_ = path;
    r.check(h.tensors, shape);
    const st::TensorInfo *t = nullptr;
    for (const st::TensorInfo &i : h.tensors)
        if (i.name == (r.tokens_ ? "tokens" : "x")) t = &i;
    r.data_offset_ = h.data_start + t->begin;
    r.read_optional(h.tensors, shape, [&](const st::TensorInfo &i, void *out) {
        st::read_at(path, h.data_start + i.begin, out, size_t(i.nbytes()));
    });
    return r;
}

RunInputs RunInputs::from_bytes(std::vector<uint8_t> bytes, const std::string &label,
                                const RnnShape &shape) {
    RunInputs r;
    r.label_ = label;
    const st::Reader reader = st::Reader::from_bytes(std::move(bytes), label);
    r.check(reader.tensors(), shape);
    r.read_optional(reader.tensors(), shape, [&](const st::TensorInfo &i, void *out) {
        std::memcpy(out, reader.data(i), size_t(i.nbytes()));
    });
    const st::TensorInfo &t = reader.tensor(r.tokens_ ? "tokens" : "x");
    // The tensor's bytes only, copied out of the reader.
    const uint8_t *p = reader.data(t);
    r.bytes_.assign(p, p + t.nbytes());
    r.in_memory_ = true;
    return r;
}

void RunInputs::fail(const std::string &what) const { throw st::FormatError(label_ + ": " + what); }

void RunInputs::check(const std::vector<st::TensorInfo> &tensors, const RnnShape &shape) {
    const st::TensorInfo *x = nullptr, *tokens = nullptr;
    for (const st::TensorInfo &t : tensors) {
        if (t.name == "x") x = &t;
        if (t.name == "tokens") tokens = &t;
    }
    if (!x == !tokens)
        fail(x ? "holds both 'x' and 'tokens', expected one of them"
               : "expected a tensor 'x' (F32 [T, B, input_size]) or 'tokens' (I64 [T, B])");
    const st::TensorInfo &t = x ? *x : *tokens;
    const std::string where = "tensor '" + t.name + "': ";
    if (tokens && !shape.lm())
        fail(where + "the model has no embedding (not a language model); give 'x'");
    if (x && shape.lm()) fail(where + "the model is a language model; give 'tokens' (I64 [T, B])");
    const st::DType want = x ? st::DType::F32 : st::DType::I64;
    if (t.dtype != want)
        fail(where + "dtype " + st::dtype_name(t.dtype) + ", expected " + st::dtype_name(want));
    if (t.shape.size() != (x ? 3u : 2u) || t.shape[0] < 1 || t.shape[1] < 1)
        fail(where + "shape " + st::shape_str(t.shape) + ", expected " +
             (x ? "[T, B, input_size]" : "[T, B]") + " with T, B >= 1");
    if (x && uint64_t(t.shape[2]) != shape.input_size)
        fail(where + "shape " + st::shape_str(t.shape) + ", expected [T, B, " +
             std::to_string(shape.input_size) + "] (the model's input_size)");
    tokens_ = tokens != nullptr;
    // The header check guarantees nbytes = T * B * W * elem without overflow.
    T_ = size_t(t.shape[0]);
    B_ = size_t(t.shape[1]);
    W_ = x ? shape.input_size : 1;
    vocab_ = shape.vocab_size;
}

template <class ReadTensor>
void RunInputs::read_optional(const std::vector<st::TensorInfo> &tensors, const RnnShape &shape,
                              ReadTensor read_tensor) {
    const int64_t LD = int64_t(shape.layers) * shape.directions(), B = int64_t(B_);
    for (const st::TensorInfo &t : tensors) {
        const std::string where = "tensor '" + t.name + "': ";
        std::vector<int64_t> want;
        std::string what;
        if (t.name == "h0") {
            want = {LD, B, int64_t(shape.h_size())};
            what = "[layers * directions, B, h_size]";
        } else if (t.name == "c0") {
            if (shape.arch != Arch::lstm) fail(where + "the model is a GRU, which has no cell state");
            want = {LD, B, int64_t(shape.hidden_size)};
            what = "[layers * directions, B, hidden_size]";
        } else if (t.name == "lengths") {
            if (tokens_)
                fail(where + "the model is a language model, which runs its sequences step by "
                             "step; lengths are for 'x' inputs");
            want = {B};
            what = "[B]";
        } else {
            continue;
        }
        const st::DType dtype = t.name == "lengths" ? st::DType::I64 : st::DType::F32;
        if (t.dtype != dtype)
            fail(where + "dtype " + st::dtype_name(t.dtype) + ", expected " +
                 st::dtype_name(dtype));
        if (t.shape != want)
            fail(where + "shape " + st::shape_str(t.shape) + ", expected " +
                 st::shape_str(want) + " " + what + " (the model's sizes and B of the inputs)");
        if (t.name == "lengths") {
            lengths_.resize(B_);
            read_tensor(t, lengths_.data());
            for (size_t b = 0; b < B_; ++b)
                if (lengths_[b] < 1 || uint64_t(lengths_[b]) > T_)
                    fail(where + "sequence " + std::to_string(b) + " is " +
                         std::to_string(lengths_[b]) + ", expected 1.." + std::to_string(T_) +
                         " (the steps of the inputs)");
            continue;
        }
        std::vector<float> &v = t.name == "h0" ? h0_ : c0_;
        v.resize(size_t(want[0] * want[1] * want[2]));
        read_tensor(t, v.data());
        const size_t rows = size_t(want[1]) * size_t(want[2]), width = size_t(want[2]);
        for (size_t i = 0; i < v.size(); ++i)
            if (!std::isfinite(v[i]))
                fail(where + "[" + std::to_string(i / rows) + ", " +
                     std::to_string(i % rows / width) + ", " + std::to_string(i % width) +
                     "] is " + std::to_string(v[i]) + ", expected a finite value");
    }
}

void RunInputs::read(size_t t0, size_t n, void *out, size_t elem) const {
    if (t0 > T_ || n > T_ - t0)
        throw std::invalid_argument(label_ + ": steps [" + std::to_string(t0) + ", " +
                                    std::to_string(t0 + n) + ") outside the " + std::to_string(T_) +
                                    " steps");
    const uint64_t step_bytes = uint64_t(B_) * W_ * elem;
    const uint64_t begin = uint64_t(t0) * step_bytes, nbytes = uint64_t(n) * step_bytes;
    if (nbytes == 0) return;
    if (in_memory_)
        std::memcpy(out, bytes_.data() + begin, size_t(nbytes));
    else
        st::read_at(label_, data_offset_ + begin, out, size_t(nbytes));
}

void RunInputs::read_x(size_t t0, size_t n, float *out) const {
    if (tokens_) throw std::logic_error(label_ + ": read_x on a 'tokens' file");
    read(t0, n, out, sizeof(float));
    const size_t count = n * B_ * W_;
    for (size_t i = 0; i < count; ++i)
        if (!std::isfinite(out[i])) {
            const size_t item = i / W_;
            char value[32];
            std::snprintf(value, sizeof value, "%g", double(out[i]));
            fail("tensor 'x': step " + std::to_string(t0 + item / B_) + ", sequence " +
                 std::to_string(item % B_) + ", element " + std::to_string(i % W_) + " is " +
                 value + ", expected a finite value");
        }
}

void RunInputs::read_tokens(size_t t0, size_t n, int64_t *out) const {
    if (!tokens_) throw std::logic_error(label_ + ": read_tokens on an 'x' file");
    read(t0, n, out, sizeof(int64_t));
    const size_t count = n * B_;
    for (size_t i = 0; i < count; ++i)
        if (out[i] < 0 || uint64_t(out[i]) >= vocab_)
            fail("tensor 'tokens': step " + std::to_string(t0 + i / B_) + ", sequence " +
                 std::to_string(i % B_) + " is " + std::to_string(out[i]) + ", expected 0.." +
                 std::to_string(vocab_ - 1) + " (the model's vocabulary)");
}

}  // namespace amq
