// Offline weight quantizers. Every method quantizes a matrix row by row into the
// same thing, k bit planes plus per-row scales (amq::QuantTensor), so that every
// method runs on the same binary kernels:
//
//   alternating  refined-greedy init (or greedy, as in the paper), then T cycles of
//                {optimal codes, least-squares scales}
//   greedy       b_i = sign(r), alpha_i = mean|r|, r -= alpha_i b_i
//   refined      greedy, with all scales so far refit after each plane
//   uniform      2^k levels evenly spaced over [-max|w|, max|w|], nearest level
//   balanced     bin edges at the percentiles (equal counts per bin), bin s takes
//                level s of 2^k evenly spaced levels c (2s - K), with the
//                least-squares c for those bins
//   Uniform and balanced take their range (max|w|, percentiles, c) from each row
//   (default) or from the whole matrix (Range::tensor, as the paper's baselines:
//   one set of levels for the tensor; still stored as per-row scales).
//   ternary      HitNet style: 0 where |w| <= 0.7 mean|w|, else sign(w) * a with a
//                the mean |w| above the threshold; 2 planes only
//
// Evenly spaced symmetric levels are exactly sums of planes with power-of-two
// scales: with c the level step (max|w| / (2^k - 1) for uniform) and alpha_i = c 2^i,
//   sum_i alpha_i b_i = c (2 s - (2^k - 1)),  s = sum_i 2^i [b_i = +1],
// which is level s of the 2^k levels -max|w| .. +max|w|. Ternary is two planes
// with equal scales a/2: (a/2)(b_1 + b_2) is -a, 0 (b_1 = +1, b_2 = -1) or +a.
// The scalar methods are those of amq/reference.h.
//
// Alternating's init: the paper starts from greedy. amq starts weight rows from
// refined greedy by default (a better start for the same cycles): with T = 2 and
// greedy init, some rows end above refined greedy at 4 bits (2-15% of the rows of
// Gaussian and Laplacian 200x300 matrices), never with refined init, and the error
// is lower overall. `init = greedy` gives the paper's algorithm exactly.
#pragma once

#include <string>
#include <vector>

#include "amq/quant_tensor.h"
#include "amq/reference.h"

namespace amq {

enum class Method { alternating, greedy, refined, uniform, balanced, ternary };

// All methods, in the order of the paper's Table 1 (then ternary).
const std::vector<Method> &all_methods();
const char *method_name(Method m);
// "alternating" -> Method::alternating; throws std::invalid_argument listing the
// valid names.
Method parse_method(const std::string &name);
// Bit widths a method supports: ternary 2 only, the others 1..4.
bool method_supports_bits(Method m, int bits);

enum class Init { refined, greedy };  // alternating's starting point
enum class Range { row, tensor };     // uniform / balanced: levels per row or per matrix
const char *range_name(Range r);
Range parse_range(const std::string &name);  // throws std::invalid_argument
const char *init_name(Init i);
Init parse_init(const std::string &name);  // throws std::invalid_argument

struct QuantizeOptions {
    Method method = Method::alternating;
    int bits = 2;
    int iters = 2;              // T, alternating only
    int threads = 0;            // 0 = all hardware threads
    Init init = Init::refined;  // alternating only
    Range range = Range::row;   // uniform and balanced only
};

// One row: codes [k][n] and scales [k], as the references return them
// (opt.threads is not used; levels always from the row, whatever opt.range).
ref::Quantized quantize_row(const QuantizeOptions &opt, const float *w, size_t n);

// Quantizes w [rows][cols] row by row, in parallel over rows. Throws
// std::invalid_argument naming the option when bits, iters or the shape are out
// of range, and when w holds NaN or Inf (naming the row and column).
QuantTensor quantize_matrix(const float *w, size_t rows, size_t cols, const QuantizeOptions &opt);

// ||w - w_q||^2 and ||w||^2 over a matrix, with w_q dequantized from the stored
// (float) scales, as the kernels use them. Sums add up over matrices, so the
// relative error of several matrices together is sum(err) / sum(norm).
struct ErrorSums {
    double err = 0;
    double norm = 0;
    double relative() const { return norm > 0 ? err / norm : 0.0; }
    ErrorSums &operator+=(const ErrorSums &o) {
        err += o.err;
        norm += o.norm;
        return *this;
    }
};
ErrorSums quantization_error(const float *w, const QuantTensor &q);

}  // namespace amq
