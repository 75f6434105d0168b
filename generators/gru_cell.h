// gru_cell: one fused GRU step for a batch (PyTorch's nn.GRU cell, gates r, z, n).
//
//   r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r gh_n),
//   h = (1 - z) n + z h_prev
//
// The scalar reference is amq::ref::gru_cell (quantize/include/amq/reference_cell.h).
//
// Buffers (Halide dimension order, innermost first):
//   gx(e, b)     f32  W_ih x + b_ih of batch item b; e = q H + u is gate q of unit u,
//                     e in [0, 3H). The item stride (dimension 1) is free: a bgemv or
//                     bgemm output whose rows are padded to whole tiles is passed as is.
//   gh(e, b)     f32  W_hh h_{t-1} + b_hh (b_hh inside the r product, as PyTorch)
//   h_prev(u, b) f32  [B][H]: H and B are its extents
//   h(u, b)      f32  [B][H]; may be written over h_prev (each element is read before
//                     it is written)
#pragma once

#include "cell_math.h"

namespace amq::gen {

struct GruCellFuncs {
    Halide::Func h;
    Halide::Var u{"u"}, b{"b"};
};

inline GruCellFuncs gru_cell_algorithm(Halide::Func gx, Halide::Func gh, Halide::Func h_prev,
                                       Halide::Expr H) {
    using namespace Halide;
    GruCellFuncs f;
    Var u = f.u, b = f.b;
    Expr r = cell_sigmoid(gx(u, b) + gh(u, b));
    Expr z = cell_sigmoid(gx(H + u, b) + gh(H + u, b));
    Expr n = cell_tanh(gx(2 * H + u, b) + r * gh(2 * H + u, b));
    f.h = Func("h");
    f.h(u, b) = (1.0f - z) * n + z * h_prev(u, b);
    return f;
}

inline void gru_cell_schedule(GruCellFuncs &f, const CellKnobs &k) {
    cell_schedule(f.h, f.u, f.b, k);
}

}  // namespace amq::gen
