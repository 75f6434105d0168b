// Generator for lstm_cell: see lstm_cell.h for the algorithm and schedule.
#include "lstm_cell.h"

namespace amq::gen {

class LstmCellGenerator : public Halide::Generator<LstmCellGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> parallel_batch{"parallel_batch", 0, 0, 1 << 20};
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_hidden{"est_hidden", 1024};
    GeneratorParam<int> est_batch{"est_batch", 1};

    Input<Buffer<float, 2>> gx{"gx"};
    Input<Buffer<float, 2>> gh{"gh"};
    Input<Buffer<float, 2>> c_prev{"c_prev"};
    Output<Buffer<float, 2>> h{"h"};
    Output<Buffer<float, 2>> c{"c"};

    void generate() {
        Halide::Expr H = c_prev.dim(0).extent(), B = c_prev.dim(1).extent();
        LstmCellFuncs f = lstm_cell_algorithm(gx, gh, c_prev, H);
        h = f.h;
        c = f.c;

        // Shapes: 4H gate values per item; the item strides are free.
        c_prev.dim(0).set_min(0).dim(1).set_min(0);
        gx.dim(0).set_bounds(0, 4 * H).dim(1).set_bounds(0, B);
        gh.dim(0).set_bounds(0, 4 * H).dim(1).set_bounds(0, B);
        h.dim(0).set_bounds(0, H).dim(1).set_bounds(0, B);
        c.dim(0).set_bounds(0, H).dim(1).set_bounds(0, B);

        const int eh = est_hidden, eb = est_batch;
        gx.set_estimates({{0, 4 * eh}, {0, eb}});
        gh.set_estimates({{0, 4 * eh}, {0, eb}});
        c_prev.set_estimates({{0, eh}, {0, eb}});
        h.set_estimates({{0, eh}, {0, eb}});
        c.set_estimates({{0, eh}, {0, eb}});

        if (!auto_schedule) {
            CellKnobs k;
            k.vector = vector;
            k.parallel_batch = parallel_batch;
            lstm_cell_schedule(f, k);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LstmCellGenerator, lstm_cell)
