// What is being tuned: a pipeline at one shape, bit pair and thread count.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace amq::tune {

// Pipelines use the fields they need (the others keep their defaults):
//   bgemv     y[rows] = W[rows x cols] x[cols], k_w weight and k_a activation bits
//   bgemm     the same for `batch` (>= 2) activation vectors; the weights are in
//             bgemv's `layout` / `tile` (the build gives bgemm bgemv's)
//   f32_gemv  y[rows] = M[rows x cols] x[cols] in float (no bits: k_w = k_a = 0)
//   lstm_cell, gru_cell  rows = hidden size H, `batch` items (no bits, cols = 0)
//   quantize_act  one vector of cols values to k_a bits with `iters` alternating
//             cycles (rows = 1, k_w = 0)
struct Problem {
    std::string pipeline;
    size_t rows = 0, cols = 0;
    size_t batch = 1;
    int k_w = 0, k_a = 0;
    int iters = 0;
    std::string layout;  // bgemm only: the weight layout and rows per tile
    int tile = 0;
    int threads = 1;

    // The shape as the CLI takes it: "4096x1024" (bgemv, f32_gemv),
    // "4096x1024x64" (bgemm: rows x cols x batch), "1024x1" (cells: hidden x
    // batch), "1024" (quantize_act: length).
    std::string shape_str() const;
    // "W2A2" (weight and activation bits, spec::bits_name), "a2t2" (quantize_act:
    // activation bits and alternating cycles), "f32" (f32_gemv and the cells).
    std::string bits_str() const;
    // "bgemv 4096x1024 W2A2 1 thread(s)", "lstm_cell 1024x1 f32 1 thread(s)",
    // "bgemm 4096x1024x64 W2A2 tiled/16 1 thread(s)"
    std::string str() const;
    // Rough operation count of one call (rows x cols x k_w x k_a for bgemv): the
    // schedules file's "pipelines" takes the knobs of each pipeline's tuned entry
    // with the most work.
    double work() const;

    bool operator==(const Problem &o) const;
    bool operator!=(const Problem &o) const { return !(*this == o); }
};

// The fields of a problem in a record or a schedules entry: "pipeline",
// "shape", "rows", "cols", "bits", "k_w", "k_a", "threads" (as since version 1)
// and "batch", "iters", "weight_layout" ({"layout", "tile"} or null).
nlohmann::ordered_json problem_fields(const Problem &p);
// Reads them back; "batch" (1), "iters" (0) and "weight_layout" (none) may be
// missing, as in lines written before they existed. Throws nlohmann's errors
// for a missing or mistyped field.
Problem problem_from_fields(const nlohmann::json &j);

}  // namespace amq::tune
