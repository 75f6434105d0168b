// quantize_act_ternary: online ternary quantization of an activation vector
// (act_method ternary), exactly amq::ref::ternary (quantize/reference.h), the
// rule the weights' ternary method applies to a row:
//
//   t = 0.7 (sum_e |x_e|) / n                        (in f64)
//   a = float(mean of |x_e| over |x_e| > t), 0 if none
//   beta = {a/2, a/2}; codes (+1,+1) for x_e > t, (-1,-1) for x_e < -t, else (+1,-1)
//
// Two passes over x (each a sum in f64 over [blocks][lanes], rfactored over the
// lanes and masked to e < n, so it reads the padding of x but does not count
// it), then one packing pass. The comparisons are in f64 against the f64
// threshold, as the reference's.
//
// Buffers (those of quantize_act, with k = 2):
//   x(e)          f32  n >= 1 values, buffer padded to a multiple of 64
//   n             i32  true length
//   bytes(q, j)   u8   packed planes as bytes, q in [0, 8 * words), j in {0, 1};
//                      the memory of a [2][words] u64 array, padding bits 0
//   beta(j)       f32  scales, j in {0, 1}
#pragma once

#include <string>

#include "Halide.h"

namespace amq::gen {

struct QuantizeActTernaryKnobs {
    int lanes = 16;  // lanes of the f64 sums; divides 64 (the padding of x)
};

// Why a knob value cannot be built, or "" (the generator and the tuner check it).
inline std::string quantize_act_ternary_knobs_error(const QuantizeActTernaryKnobs &k) {
    if (k.lanes < 1 || k.lanes > 64 || 64 % k.lanes != 0)
        return "lanes = " + std::to_string(k.lanes) + " (expected 1, 2, 4, .., 64: divides 64)";
    return "";
}

struct QuantizeActTernaryFuncs {
    Halide::Func abs_sum, big_sum;  // the two passes: sum |x|; sum |x| and count over |x| > t
    Halide::RVar abs_lanes, big_lanes;
    Halide::Func bytes, beta;
    Halide::Var q{"q"}, j{"j"};
};

inline QuantizeActTernaryFuncs quantize_act_ternary_algorithm(Halide::Func x, Halide::Expr n,
                                                              int lanes) {
    using namespace Halide;
    auto f64 = [](double v) { return Internal::make_const(Float(64), v); };
    QuantizeActTernaryFuncs f;
    Expr nd = cast<double>(n);
    auto absx = [&](Expr e) { return abs(cast<double>(x(e))); };

    RDom ra(0, lanes, 0, (n + lanes - 1) / lanes, "ra");
    Expr ea = ra.y * lanes + ra.x;
    f.abs_sum = Func("abs_sum");
    f.abs_sum() = f64(0);
    f.abs_sum() += select(ea < n, absx(ea), f64(0));
    f.abs_lanes = ra.x;
    Expr t = strict_float(f64(0.7) * f.abs_sum() / nd);

    RDom rb(0, lanes, 0, (n + lanes - 1) / lanes, "rb");
    Expr eb = rb.y * lanes + rb.x;
    Expr big_b = eb < n && absx(eb) > t;
    f.big_sum = Func("big_sum");
    f.big_sum() = Tuple(f64(0), f64(0));
    f.big_sum() = Tuple(f.big_sum()[0] + select(big_b, absx(eb), f64(0)),
                        f.big_sum()[1] + select(big_b, f64(1), f64(0)));
    f.big_lanes = rb.x;
    Expr count = f.big_sum()[1];
    Expr a = select(count > f64(0), cast<double>(cast<float>(f.big_sum()[0] / count)), f64(0));
    f.beta = Func("beta");
    f.beta(f.j) = cast<float>(a / f64(2));

    // Bit b of byte q of plane j is element e = 8 q + b: plane 0 is +1 unless
    // x_e < -t, plane 1 is +1 only when x_e > t; elements past n are 0.
    Expr byte = cast<uint8_t>(0);
    for (int b = 0; b < 8; ++b) {
        Expr e = f.q * 8 + b;
        Expr xe = cast<double>(x(e));
        Expr on = select(f.j == 0, xe >= -t, xe > t);
        byte = byte | select(e < n && on, cast<uint8_t>(1 << b), cast<uint8_t>(0));
    }
    f.bytes = Func("bytes");
    f.bytes(f.q, f.j) = byte;
    return f;
}

inline void quantize_act_ternary_schedule(QuantizeActTernaryFuncs &f,
                                          const QuantizeActTernaryKnobs &k) {
    using namespace Halide;
    for (auto [sum, lanes] : {std::pair{f.abs_sum, f.abs_lanes}, {f.big_sum, f.big_lanes}}) {
        Var u("u");
        Func intm = sum.update().rfactor(lanes, u);
        intm.compute_root().vectorize(u, k.lanes).update().vectorize(u, k.lanes);
        sum.compute_root();
    }
    // One word (8 bytes) of a plane per vector.
    f.bytes.reorder(f.q, f.j).vectorize(f.q, 8);
}

}  // namespace amq::gen
