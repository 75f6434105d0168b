// Helpers shared by the kernel tests: random data and comparisons.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "amq/reference.h"

namespace amq::testing {

// Runs fn and expects it to throw an E whose message contains `needle`.
template <typename E, typename Fn>
void expect_throw_with(Fn &&fn, const std::string &needle) {
    try {
        fn();
        ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const E &e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

inline std::vector<float> normal(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g);
    return v;
}

inline std::vector<float> heavy_tailed(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::student_t_distribution<float> d(1.5f);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g);
    return v;
}

inline std::vector<uint64_t> random_words(size_t count, uint32_t seed) {
    std::mt19937_64 g(seed);
    std::vector<uint64_t> v(count);
    for (auto &w : v) w = g();
    return v;
}

// Random packed planes [planes][rows][words] with zero padding bits.
inline std::vector<uint64_t> random_planes(int planes, size_t rows, size_t cols, uint32_t seed) {
    const size_t words = ref::words_for(cols);
    auto v = random_words(size_t(planes) * rows * words, seed);
    const uint64_t mask = ref::last_word_mask(cols);
    for (size_t p = 0; p < size_t(planes) * rows; ++p) v[p * words + words - 1] &= mask;
    return v;
}

// Tolerance for a float result of a sum whose terms have magnitude `scale`.
// Largest |a[i] - b[i]|; a size mismatch fails the calling test.
inline double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    EXPECT_EQ(a.size(), b.size());
    double m = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

inline double tol(double scale) { return 1e-5 * scale + 1e-6; }

}  // namespace amq::testing
