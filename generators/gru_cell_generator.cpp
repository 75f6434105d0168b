// Generator for gru_cell: see gru_cell.h for the algorithm and schedule.
#include "gru_cell.h"
#include "isa_knobs.h"

namespace amq::gen {

class GruCellGenerator : public Halide::Generator<GruCellGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> parallel_batch{"parallel_batch", 0, 0, 1 << 20};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_hidden{"est_hidden", 1024};
    GeneratorParam<int> est_batch{"est_batch", 1};

    Input<Buffer<float, 2>> gx{"gx"};
    Input<Buffer<float, 2>> gh{"gh"};
    Input<Buffer<float, 2>> h_prev{"h_prev"};
    Output<Buffer<float, 2>> h{"h"};

    void generate() {
        GruCellFuncs f = gru_cell_algorithm(gx, gh, h_prev, h_prev.dim(0).extent());
        h = f.h;

        constrain_cell_buffers(3, gx, gh, h_prev, h);
        set_cell_estimates(3, est_hidden, est_batch, gx, gh, h_prev, h);

        IsaKnobs isa(isa_knobs, get_target(), "gru_cell");
        if (!auto_schedule) {
            CellKnobs k;
            k.vector = isa.get("vector", int(vector));
            k.parallel_batch = isa.get("parallel_batch", int(parallel_batch));
            isa.done();
            gru_cell_schedule(f, k);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::GruCellGenerator, gru_cell)
