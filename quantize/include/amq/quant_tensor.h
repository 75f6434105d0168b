// A weight matrix in the multi-bit binary format of the model file:
// row r ~ sum_i alpha[r][i] * plane_i[r], each plane a row of +1/-1 codes packed
// 64 to a uint64 word (bit c%64 of word c/64 is column c, 1 = +1, padding 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amq {

struct QuantTensor {
    int k = 0;          // planes (bits), 1..4
    size_t rows = 0;    // matrix rows
    size_t cols = 0;    // matrix columns (true length, not padded)
    std::vector<uint64_t> planes;  // [k][rows][words], words = (cols + 63) / 64
    std::vector<float> alpha;      // [rows][k]

    size_t words() const { return (cols + 63) / 64; }
    // Element (r, c) of the dequantized matrix, sum_i alpha[r][i] * code_i(r, c).
    float value(size_t r, size_t c) const {
        const size_t w = words();
        float v = 0.0f;
        for (int i = 0; i < k; ++i) {
            const uint64_t word = planes[(size_t(i) * rows + r) * w + c / 64];
            v += alpha[r * size_t(k) + size_t(i)] * (((word >> (c % 64)) & 1) ? 1.0f : -1.0f);
        }
        return v;
    }
};

}  // namespace amq
