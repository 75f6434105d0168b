// What is being tuned: a pipeline at one shape, bit pair and thread count.
#pragma once

#include <cstddef>
#include <string>

namespace amq::tune {

// Pipelines use the fields they need: bgemv y[rows] = W[rows x cols] x[cols]
// with k_w weight and k_a activation bits.
struct Problem {
    std::string pipeline;
    size_t rows = 0, cols = 0;
    int k_w = 0, k_a = 0;
    int threads = 1;

    std::string shape_str() const { return std::to_string(rows) + "x" + std::to_string(cols); }
    std::string bits_str() const { return std::to_string(k_w) + "x" + std::to_string(k_a); }
    // "bgemv 4096x1024 W2A2 1 thread(s)"
    std::string str() const {
        return pipeline + " " + shape_str() + " W" + std::to_string(k_w) + "A" +
               std::to_string(k_a) + " " + std::to_string(threads) + " thread(s)";
    }
};

}  // namespace amq::tune
