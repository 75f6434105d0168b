// Weight layouts a binary kernel can be built for, shared by pack_bits and bgemv.
//
// Every layout is the same 4-D buffer W(r, i, w, t) with different strides (the
// table is amq/weight_layout.h, shared with the runtime), so the algorithm is
// written once and the layout is a schedule knob.
#pragma once

#include <stdexcept>
#include <string>

#include "Halide.h"
#include "amq/weight_layout.h"

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
    LayoutStrides<Expr> s;
    layout_strides<Expr>(layout_name(layout), tile, k, W.dim(2).extent(), W.dim(3).extent(), s);
    W.dim(0).set_stride(s.r);
    W.dim(1).set_stride(s.i);
    W.dim(2).set_stride(s.w);
    W.dim(3).set_stride(s.t);
}

// The weight side of a binary product (bgemv, bgemm) as its generator and the
// tuner declare it: W in `layout` with `words` words a row, and the row-tiled
// scales alpha(r, i, t) and bias(r, t) of the same tiles.
template <typename WBuffer, typename AlphaBuffer, typename BiasBuffer>
void constrain_product_weights(WBuffer &W, AlphaBuffer &alpha, BiasBuffer &bias, Layout layout,
                               int tile, int k_w, Halide::Expr words) {
    constrain_weight_layout(W, layout, tile, k_w);
    W.dim(2).set_extent(words);
    alpha.dim(0).set_bounds(0, tile).dim(1).set_bounds(0, k_w).dim(2).set_min(0);
    bias.dim(0).set_bounds(0, tile).dim(1).set_min(0);
}

}  // namespace amq::gen
