// The row-panel layout of a float matrix for f32_gemv, shared by the runtime
// (amq::FloatMatrix) and the tuner; generators/f32_gemv.h declares the same
// strides (constrain_f32_gemv_buffers).
//
// M [rows][cols] row-major becomes Mp[panels][cols][panel]: panel q holds rows
// q*panel .. q*panel + panel - 1, one column of them after the other, rows past
// the last zero (panels = ceil(rows / panel)). The kernel updates a panel's
// `panel` outputs per column with vector FMAs of that column and x[c]
// broadcast: no horizontal sums, no column tail.
#pragma once

#include <cstddef>

namespace amq {

inline size_t float_panels(size_t rows, size_t panel) { return (rows + panel - 1) / panel; }

// Floats of the packed matrix: panels * cols * panel.
inline size_t float_panels_size(size_t rows, size_t cols, size_t panel) {
    return float_panels(rows, panel) * cols * panel;
}

// Packs M [rows][cols] into out (float_panels_size floats), padding with zeros.
inline void pack_float_panels(const float *M, size_t rows, size_t cols, size_t panel, float *out) {
    const size_t panels = float_panels(rows, panel);
    for (size_t q = 0; q < panels; ++q)
        for (size_t c = 0; c < cols; ++c)
            for (size_t p = 0; p < panel; ++p) {
                const size_t r = q * panel + p;
                out[(q * cols + c) * panel + p] = r < rows ? M[r * cols + c] : 0.0f;
            }
}

}  // namespace amq
