#include "pipeline_data.h"

#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "amq/reference.h"
#include "amq/weight_layout.h"

namespace amq::tune {

BinaryData make_binary_data(size_t rows, size_t cols, int k_w, int k_a, size_t batch,
                            uint64_t seed) {
    BinaryData d;
    d.rows = rows;
    d.cols = cols;
    d.words = ref::words_for(cols);
    d.batch = batch;
    d.k_w = k_w;
    d.k_a = k_a;
    std::mt19937_64 g(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    auto planes = [&](size_t count_rows, int k) {
        std::vector<uint64_t> v(size_t(k) * count_rows * d.words);
        for (auto &w : v) w = g();
        for (size_t p = 0; p < size_t(k) * count_rows; ++p)
            v[p * d.words + d.words - 1] &= ref::last_word_mask(cols);
        return v;
    };
    d.planes = planes(rows, k_w);
    d.A = planes(batch, k_a);
    d.alpha.resize(rows * size_t(k_w));
    for (auto &v : d.alpha) v = nd(g);
    d.bias.resize(rows);
    for (auto &v : d.bias) v = nd(g);
    d.beta.resize(size_t(k_a) * batch);
    for (auto &v : d.beta) v = nd(g);
    d.expect.reserve(batch * rows);
    d.scale.assign(batch * rows, 0.0);
    for (size_t b = 0; b < batch; ++b) {
        const std::vector<double> y = ref::binary_gemv(
            d.planes.data(), d.alpha.data(), k_w, rows, d.A.data() + b * size_t(k_a) * d.words,
            d.beta.data() + b * size_t(k_a), k_a, cols, d.bias.data());
        d.expect.insert(d.expect.end(), y.begin(), y.end());
        for (size_t r = 0; r < rows; ++r)
            for (int i = 0; i < k_w; ++i)
                for (int j = 0; j < k_a; ++j)
                    d.scale[b * rows + r] +=
                        std::abs(d.alpha[r * k_w + i] * d.beta[b * k_a + j]) * double(cols);
    }
    return d;
}

PackedWeights::PackedWeights(const BinaryData &d, const std::string &layout, int tile) {
    tiles_ = ceil_div(d.rows, size_t(tile));
    LayoutStrides<int64_t> s;
    if (!layout_strides<int64_t>(layout, tile, d.k_w, int64_t(d.words), int64_t(tiles_), s))
        throw std::runtime_error("unknown weight layout '" + layout + "'");
    storage_.assign(tiles_ * size_t(tile) * size_t(d.k_w) * d.words, 0);
    uint64_t *packed = storage_.data();
    for (int i = 0; i < d.k_w; ++i)
        for (size_t row = 0; row < d.rows; ++row)
            for (size_t w = 0; w < d.words; ++w) {
                const size_t t = row / size_t(tile), r = row % size_t(tile);
                packed[size_t(s.r * int64_t(r) + s.i * i + s.w * int64_t(w) + s.t * int64_t(t))] =
                    d.planes[(size_t(i) * d.rows + row) * d.words + w];
            }
    halide_dimension_t dims[4] = {{0, tile, int32_t(s.r)},
                                  {0, d.k_w, int32_t(s.i)},
                                  {0, int32_t(d.words), int32_t(s.w)},
                                  {0, int32_t(tiles_), int32_t(s.t)}};
    W = Halide::Runtime::Buffer<uint64_t>(packed, 4, dims);
    alpha = Halide::Runtime::Buffer<float>(tile, d.k_w, int(tiles_));
    bias = Halide::Runtime::Buffer<float>(tile, int(tiles_));
    alpha.fill(0.0f);
    bias.fill(0.0f);
    for (size_t row = 0; row < d.rows; ++row) {
        const int t = int(row / size_t(tile)), r = int(row % size_t(tile));
        for (int i = 0; i < d.k_w; ++i) alpha(r, i, t) = d.alpha[row * d.k_w + i];
        bias(r, t) = d.bias[row];
    }
}

std::string compare_values(size_t n, const std::function<double(size_t)> &got,
                           const std::function<double(size_t)> &want,
                           const std::function<double(size_t)> &tol,
                           const std::function<std::string(size_t)> &what, const std::string &noun,
                           const std::string &where) {
    std::ostringstream msg;
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
        const double g = got(i), w = want(i);
        if (std::abs(g - w) <= tol(i)) continue;  // NaN fails
        if (bad < 3) msg << (bad ? "; " : "") << what(i) << ": kernel " << g << ", reference " << w;
        ++bad;
    }
    if (!bad) return "";
    return std::to_string(bad) + " of " + std::to_string(n) + " " + noun + " wrong at " + where +
           " (" + msg.str() + ")";
}

std::vector<float> random_floats(size_t n, float sd, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto &x : v) x = nd(g);
    return v;
}

}  // namespace amq::tune
