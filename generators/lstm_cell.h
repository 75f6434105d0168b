// lstm_cell: one fused LSTM step for a batch (PyTorch's nn.LSTM cell, gates i, f, g, o).
//
//   i = sigmoid(gx_i + gh_i), f = sigmoid(gx_f + gh_f), g = tanh(gx_g + gh_g),
//   o = sigmoid(gx_o + gh_o);   c = f c_prev + i g;   h = o tanh(c)
//
// The scalar reference is amq::ref::lstm_cell (quantize/include/amq/reference_cell.h).
//
// Buffers (Halide dimension order, innermost first):
//   gx(e, b)     f32  W_ih x + b_ih of batch item b; e = q H + u is gate q of unit u,
//                     e in [0, 4H). The item stride (dimension 1) is free: a bgemv or
//                     bgemm output whose rows are padded to whole tiles is passed as is.
//   gh(e, b)     f32  W_hh h_{t-1} + b_hh, the same way
//   c_prev(u, b) f32  [B][H]: H and B are its extents
//   c(u, b)      f32  c_t, [B][H]: c_prev is read only here, element by element before
//                     the element is written, so c may be written over c_prev
//   h(u, b)      f32  h_t, [B][H] (reads gx, gh and c, never c_prev)
#pragma once

#include "cell_math.h"

namespace amq::gen {

struct LstmCellFuncs {
    Halide::Func h, c;
    Halide::Var u{"u"}, b{"b"};
};

inline LstmCellFuncs lstm_cell_algorithm(Halide::Func gx, Halide::Func gh, Halide::Func c_prev,
                                         Halide::Expr H) {
    using namespace Halide;
    LstmCellFuncs f;
    Var u = f.u, b = f.b;
    auto pre = [&](int q) { return gx(q * H + u, b) + gh(q * H + u, b); };
    f.c = Func("c");
    f.c(u, b) = cell_sigmoid(pre(1)) * c_prev(u, b) + cell_sigmoid(pre(0)) * cell_tanh(pre(2));
    f.h = Func("h");
    f.h(u, b) = cell_sigmoid(pre(3)) * cell_tanh(f.c(u, b));
    return f;
}

// Both outputs are computed in full, c first: h reads c back from the c output
// (L1-resident), so each of the five exponentials per unit is computed once,
// and c_prev is read only by the c pass (c may be written over it).
inline void lstm_cell_schedule(LstmCellFuncs &f, const CellKnobs &k) {
    cell_schedule(f.c, f.u, f.b, k);
    cell_schedule(f.h, f.u, f.b, k);
}

}  // namespace amq::gen
