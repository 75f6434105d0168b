// Inputs shared by the tunable pipelines' invocations: 64-byte aligned
// storage, random binary problems with the scalar reference's output and the
// runtime's weight repacking, and the comparison with a reference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "HalideBuffer.h"
#include "amq/aligned.h"
#include "amq/thread_pool.h"

namespace amq::tune {

inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// The run-time `parallel` flag of a product over `weight_bytes` of weights on
// `threads` threads: on the problem's shape as the runtime decides it
// (pool::runs_parallel), so that a candidate is timed as the product runs it;
// on the edge shape (a check only) whenever threads > 1, so that the parallel
// variant is checked on partial tiles too.
inline bool parallel_flag(int threads, size_t weight_bytes, bool edge_shape) {
    return edge_shape ? threads > 1 : pool::runs_parallel(threads, weight_bytes);
}

// A random multi-bit binary product in the model file's layout: W [rows x cols]
// with k_w planes, `batch` activation vectors of k_a planes, and the output of
// ref::binary_gemv for each vector.
struct BinaryData {
    size_t rows = 0, cols = 0, words = 0, batch = 1;
    int k_w = 0, k_a = 0;
    std::vector<uint64_t> planes;  // [k_w][rows][words]
    std::vector<float> alpha;      // [rows][k_w]
    std::vector<float> bias;       // [rows]
    std::vector<uint64_t> A;       // [batch][k_a][words]
    std::vector<float> beta;       // [batch][k_a]
    std::vector<double> expect;    // [batch][rows]: ref::binary_gemv
    std::vector<double> scale;     // [batch][rows]: sum |alpha beta| x cols, for the tolerance
};
BinaryData make_binary_data(size_t rows, size_t cols, int k_w, int k_a, size_t batch,
                            uint64_t seed);

// The weights of `d` repacked for a kernel with `layout` and `tile`, as the
// runtime does (amq/weight_layout.h): W(r, i, w, t), alpha(r, i, t), bias(r, t).
// The planes are 64-byte aligned like the runtime's (amq/aligned.h), so that no
// candidate is timed on data that happens to straddle cache lines.
class PackedWeights {
public:
    PackedWeights(const BinaryData &d, const std::string &layout, int tile);
    PackedWeights(const PackedWeights &) = delete;  // W points into storage_
    PackedWeights &operator=(const PackedWeights &) = delete;
    size_t tiles() const { return tiles_; }
    // Bytes of planes and scales, as amq::BinaryMatrix::bytes() counts them.
    size_t bytes() const { return storage_.size() * sizeof(uint64_t) + alpha.size_in_bytes(); }
    Halide::Runtime::Buffer<uint64_t> W;
    Halide::Runtime::Buffer<float> alpha, bias;

private:
    size_t tiles_ = 0;
    AlignedVector<uint64_t> storage_;
};

// "" when got(i) is within tol(i) of want(i) for every i < n (NaN fails),
// else "<bad> of <n> <noun> wrong at <where> (<what(i)>: kernel <got>,
// reference <want>; ...)" with the first three.
std::string compare_values(size_t n, const std::function<double(size_t)> &got,
                           const std::function<double(size_t)> &want,
                           const std::function<double(size_t)> &tol,
                           const std::function<std::string(size_t)> &what, const std::string &noun,
                           const std::string &where);

// Normally distributed floats (mean 0, standard deviation `sd`), seeded.
std::vector<float> random_floats(size_t n, float sd, uint64_t seed);

}  // namespace amq::tune
