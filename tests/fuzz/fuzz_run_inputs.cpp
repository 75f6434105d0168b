// libFuzzer target: the inputs file of `amq run` on arbitrary bytes, read the way
// amq run reads it (amq::RunInputs: the header checked against the model's sizes,
// then every step read in chunks, each value checked), for a model without
// embedding (input_size 3) and a language model (vocabulary of 7). Any input must
// be read in full or throw amq::st::FormatError; anything else (another
// exception, a crash, a sanitizer report) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "amq/run_inputs.h"

namespace {

amq::RnnShape plain_shape() {
    amq::RnnShape s;
    s.arch = amq::Arch::lstm;
    s.layers = 1;
    s.input_size = 3;
    s.hidden_size = 4;
    return s;
}

amq::RnnShape lm_shape() {
    amq::RnnShape s;
    s.arch = amq::Arch::gru;
    s.layers = 1;
    s.input_size = 2;
    s.hidden_size = 4;
    s.vocab_size = 7;
    return s;
}

// Reads every step in chunks of 3 (which does not divide most T); the values
// read must pass the checks read_x / read_tokens promise, and the optional
// h0, c0 and lengths those of RunInputs::open.
void read_all(const amq::RunInputs &in, const amq::RnnShape &s) {
    const size_t chunk = 3, T = in.steps(), B = in.batch(), W = in.width();
    if (T < 1 || B < 1 || W != (in.tokens() ? 1 : s.input_size)) std::abort();
    const size_t LD = size_t(s.layers) * size_t(s.directions());
    if (!in.h0().empty() && in.h0().size() != LD * B * s.h_size()) std::abort();
    if (!in.c0().empty() && in.c0().size() != LD * B * s.hidden_size) std::abort();
    for (float v : in.h0())
        if (!(v - v == 0)) std::abort();
    for (float v : in.c0())
        if (!(v - v == 0)) std::abort();
    if (!in.lengths().empty() && in.lengths().size() != B) std::abort();
    for (int64_t l : in.lengths())
        if (l < 1 || uint64_t(l) > T) std::abort();
    std::vector<float> x(in.tokens() ? 0 : chunk * B * W);
    std::vector<int64_t> ids(in.tokens() ? chunk * B : 0);
    for (size_t t0 = 0; t0 < T; t0 += chunk) {
        const size_t n = T - t0 < chunk ? T - t0 : chunk;
        if (in.tokens()) {
            in.read_tokens(t0, n, ids.data());
            for (size_t i = 0; i < n * B; ++i)
                if (ids[i] < 0 || uint64_t(ids[i]) >= s.vocab_size) std::abort();
        } else {
            in.read_x(t0, n, x.data());
            for (size_t i = 0; i < n * B * W; ++i)
                if (!(x[i] - x[i] == 0)) std::abort();  // not finite
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const amq::RnnShape shapes[] = {plain_shape(), lm_shape()};
    for (const amq::RnnShape &s : shapes) {
        try {
            const amq::RunInputs in = amq::RunInputs::from_bytes(
                std::vector<uint8_t>(data, data + size), "fuzz.safetensors", s);
            read_all(in, s);
        } catch (const amq::st::FormatError &) {
        }
    }
    return 0;
}
