// pack_bits: +/-1 codes (or the signs of floats) -> packed uint64 planes.
//
//   src(c, row, i)  f32  plane i, row, column c; bit = src >= 0 (sign(0) = +1)
//   W(r, i, w, t)   u64  row = t * tile + r; bit b of word w is column 64 w + b;
//                        columns >= cols and rows >= rows are 0 (padding)
// The output's strides pick the layout (layout.h): the model file's plane-major
// [planes][rows][words] with tile 1, or the layout a bgemv kernel was built for.
#pragma once

#include "layout.h"

namespace amq::gen {

struct PackBitsKnobs {
    int vector = 8;  // lanes over rows of a tile (tiled) or words (plane-major)
};

struct PackBitsFuncs {
    Halide::Func W;
    Halide::Var r{"r"}, i{"i"}, w{"w"}, t{"t"};
};

inline PackBitsFuncs pack_bits_algorithm(Halide::Func src, Halide::Expr cols, Halide::Expr rows,
                                         int tile) {
    using namespace Halide;
    PackBitsFuncs f;
    Expr row = f.t * tile + f.r;
    Expr word = cast<uint64_t>(0);
    for (int b = 0; b < 64; ++b) {
        Expr c = f.w * 64 + b;
        Expr v = src(clamp(c, 0, cols - 1), clamp(row, 0, rows - 1), f.i);
        Expr on = c < cols && row < rows && v >= 0.0f;
        word = word | select(on, cast<uint64_t>(1) << b, cast<uint64_t>(0));
    }
    f.W = Func("W");
    f.W(f.r, f.i, f.w, f.t) = word;
    return f;
}

inline void pack_bits_schedule(PackBitsFuncs &f, Layout layout, int tile, const PackBitsKnobs &k) {
    using namespace Halide;
    if (layout == Layout::tiled && tile > 1) {
        f.W.reorder(f.r, f.i, f.w, f.t)
            .vectorize(f.r, std::min(tile, k.vector), TailStrategy::GuardWithIf);
    } else {
        f.W.reorder(f.w, f.r, f.i, f.t).vectorize(f.w, k.vector, TailStrategy::GuardWithIf);
    }
    f.W.parallel(f.t);
}

}  // namespace amq::gen
