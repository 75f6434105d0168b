// Generator for gru_cell: see gru_cell.h for the algorithm and schedule.
#include "gru_cell.h"

namespace amq::gen {

class GruCellGenerator : public Halide::Generator<GruCellGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> parallel_batch{"parallel_batch", 0, 0, 1 << 20};
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_hidden{"est_hidden", 1024};
    GeneratorParam<int> est_batch{"est_batch", 1};

    Input<Buffer<float, 2>> gx{"gx"};
    Input<Buffer<float, 2>> gh{"gh"};
    Input<Buffer<float, 2>> h_prev{"h_prev"};
    Output<Buffer<float, 2>> h{"h"};

    void generate() {
        Halide::Expr H = h_prev.dim(0).extent(), B = h_prev.dim(1).extent();
        GruCellFuncs f = gru_cell_algorithm(gx, gh, h_prev, H);
        h = f.h;

        // Shapes: 3H gate values per item; the item strides are free.
        h_prev.dim(0).set_min(0).dim(1).set_min(0);
        gx.dim(0).set_bounds(0, 3 * H).dim(1).set_bounds(0, B);
        gh.dim(0).set_bounds(0, 3 * H).dim(1).set_bounds(0, B);
        h.dim(0).set_bounds(0, H).dim(1).set_bounds(0, B);

        const int eh = est_hidden, eb = est_batch;
        gx.set_estimates({{0, 3 * eh}, {0, eb}});
        gh.set_estimates({{0, 3 * eh}, {0, eb}});
        h_prev.set_estimates({{0, eh}, {0, eb}});
        h.set_estimates({{0, eh}, {0, eb}});

        if (!auto_schedule) {
            CellKnobs k;
            k.vector = vector;
            k.parallel_batch = parallel_batch;
            gru_cell_schedule(f, k);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::GruCellGenerator, gru_cell)
