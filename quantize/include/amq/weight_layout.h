// The weight layouts the binary kernels can be built for, as one table of
// strides shared by the Halide generators (with Halide::Expr) and the runtime
// (with int64_t), so that the two cannot disagree.
//
// Every layout is the same 4-D buffer W(r, i, w, t) -- lane r of row tile t,
// plane i, word w; row = t * tile + r -- with different strides (in words):
//   tiled        [t][w][i][r]  one vector load holds word w of `tile` rows
//   plane_major  [i][t][r][w]  the model file's [k_w][rows][words]
//   interleaved  [t][r][w][i]  all planes of a word side by side
#pragma once

#include <string>

namespace amq {

template <typename T>
struct LayoutStrides {
    T r, i, w, t;
};

// Strides for the layout called `name` with `tile` rows per tile, k planes,
// `words` words per row and `tiles` row tiles. False for an unknown name.
template <typename T>
bool layout_strides(const std::string &name, T tile, T k, T words, T tiles, LayoutStrides<T> &out) {
    if (name == "tiled") {
        out = {T(1), tile, tile * k, tile * k * words};
    } else if (name == "plane_major") {
        out = {words, tile * words * tiles, T(1), tile * words};
    } else if (name == "interleaved") {
        out = {k * words, T(1), k, tile * k * words};
    } else {
        return false;
    }
    return true;
}

}  // namespace amq
