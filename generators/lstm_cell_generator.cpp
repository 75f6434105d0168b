// Generator for lstm_cell: see lstm_cell.h for the algorithm and schedule.
#include "lstm_cell.h"
#include "isa_knobs.h"

namespace amq::gen {

class LstmCellGenerator : public Halide::Generator<LstmCellGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> parallel_batch{"parallel_batch", 0, 0, 1 << 20};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_hidden{"est_hidden", 1024};
    GeneratorParam<int> est_batch{"est_batch", 1};

    Input<Buffer<float, 2>> gx{"gx"};
    Input<Buffer<float, 2>> gh{"gh"};
    Input<Buffer<float, 2>> c_prev{"c_prev"};
    Output<Buffer<float, 2>> h{"h"};
    Output<Buffer<float, 2>> c{"c"};

    void generate() {
        LstmCellFuncs f = lstm_cell_algorithm(gx, gh, c_prev, c_prev.dim(0).extent());
        h = f.h;
        c = f.c;

        constrain_cell_buffers(4, gx, gh, c_prev, h, c);
        set_cell_estimates(4, est_hidden, est_batch, gx, gh, c_prev, h, c);

        IsaKnobs isa(isa_knobs, get_target(), "lstm_cell");
        if (!auto_schedule) {
            CellKnobs k;
            k.vector = isa.get("vector", int(vector));
            k.parallel_batch = isa.get("parallel_batch", int(parallel_batch));
            isa.done();
            lstm_cell_schedule(f, k);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LstmCellGenerator, lstm_cell)
