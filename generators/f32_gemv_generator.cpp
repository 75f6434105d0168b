// Generator for the float baseline f32_gemv: see f32_gemv.h.
#include "f32_gemv.h"
#include "isa_knobs.h"

#include <stdexcept>
#include <string>

namespace amq::gen {

class F32GemvGenerator : public Halide::Generator<F32GemvGenerator> {
public:
    GeneratorParam<int> panel{"panel", 16, 1, 256};  // the runtime packs by it: never in isa_knobs
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> panels{"panels", 2, 1, 16};
    GeneratorParam<int> parallel_rows{"parallel_rows", 0, 0, 1 << 20};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    GeneratorParam<int> est_rows{"est_rows", 4096};
    GeneratorParam<int> est_cols{"est_cols", 1024};

    Input<Buffer<float, 3>> Mp{"Mp"};
    Input<Buffer<float, 1>> x{"x"};
    Input<Buffer<float, 1>> bias{"bias"};
    Input<bool> parallel{"parallel", false};
    Output<Buffer<float, 1>> y{"y"};

    void generate() {
        IsaKnobs isa(isa_knobs, get_target(), "f32_gemv");
        F32GemvKnobs k;
        k.panel = panel;
        k.vector = isa.get("vector", int(vector));
        k.panels = isa.get("panels", int(panels));
        k.parallel_rows = isa.get("parallel_rows", int(parallel_rows));
        isa.done();
        if (k.panel % k.vector != 0)
            throw std::invalid_argument("f32_gemv generator: vector " + std::to_string(k.vector) +
                                        " does not divide panel " + std::to_string(k.panel));
        F32GemvFuncs f = f32_gemv_algorithm(Mp, x, bias, Mp.dim(1).extent(), k.panel);
        y = f.y;

        constrain_f32_gemv_buffers(Mp, x, bias, y, k.panel);
        set_f32_gemv_estimates(Mp, x, bias, parallel, y, est_rows, est_cols, k.panel, false);

        if (!auto_schedule) {
            f32_gemv_schedule(f, k, parallel);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::F32GemvGenerator, f32_gemv)
