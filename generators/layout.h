// Weight layouts a binary kernel can be built for, shared by pack_bits and bgemv.
//
// Every layout is the same 4-D buffer W(r, i, w, t) -- lane r of row tile t,
// plane i, word w; row = t * tile + r -- with different strides, so the algorithm
// is written once and the layout is a schedule knob:
//   tiled        [t][w][i][r]  one vector load holds word w of `tile` rows
//   plane_major  [i][t][r][w]  the model file's [k_w][rows][words]
//   interleaved  [t][r][w][i]  all planes of a word side by side
#pragma once

#include <stdexcept>
#include <string>

#include "Halide.h"

namespace amq::gen {

enum class Layout { tiled, plane_major, interleaved };

inline Layout parse_layout(const std::string &s) {
    if (s == "tiled") return Layout::tiled;
    if (s == "plane_major") return Layout::plane_major;
    if (s == "interleaved") return Layout::interleaved;
    throw std::invalid_argument("unknown weight layout '" + s +
                                "' (expected tiled, plane_major or interleaved)");
}

inline const char *layout_name(Layout l) {
    switch (l) {
        case Layout::tiled:
            return "tiled";
        case Layout::plane_major:
            return "plane_major";
        case Layout::interleaved:
            return "interleaved";
    }
    return "?";
}

// Declares the strides of a W(r, i, w, t) buffer (an ImageParam, Input or Output
// buffer) for the layout, with `tile` rows per tile known at compile time and k
// planes (a constant for bgemv, the buffer's extent for pack_bits).
template <typename BufferLike>
void constrain_weight_layout(BufferLike &W, Layout layout, int tile, Halide::Expr k) {
    using Halide::Expr;
    W.dim(0).set_bounds(0, tile);
    W.dim(1).set_bounds(0, k);
    W.dim(2).set_min(0);
    W.dim(3).set_min(0);
    Expr words = W.dim(2).extent();
    switch (layout) {
        case Layout::tiled:
            W.dim(0).set_stride(1);
            W.dim(1).set_stride(tile);
            W.dim(2).set_stride(tile * k);
            W.dim(3).set_stride(tile * k * words);
            break;
        case Layout::plane_major:
            W.dim(0).set_stride(words);
            W.dim(2).set_stride(1);
            W.dim(3).set_stride(tile * words);
            W.dim(1).set_stride(tile * words * W.dim(3).extent());
            break;
        case Layout::interleaved:
            W.dim(1).set_stride(1);
            W.dim(2).set_stride(k);
            W.dim(0).set_stride(k * words);
            W.dim(3).set_stride(tile * k * words);
            break;
    }
}

}  // namespace amq::gen
