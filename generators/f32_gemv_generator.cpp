// Generator for the float baseline f32_gemv: see f32_gemv.h.
#include "f32_gemv.h"
#include "isa_knobs.h"

namespace amq::gen {

class F32GemvGenerator : public Halide::Generator<F32GemvGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> accumulators{"accumulators", 1, 1, 8};
    GeneratorParam<int> rows_unroll{"rows_unroll", 4, 1, 16};
    GeneratorParam<int> parallel_rows{"parallel_rows", 0, 0, 1 << 20};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    GeneratorParam<int> est_rows{"est_rows", 4096};
    GeneratorParam<int> est_cols{"est_cols", 1024};

    Input<Buffer<float, 2>> M{"M"};
    Input<Buffer<float, 1>> x{"x"};
    Input<Buffer<float, 1>> bias{"bias"};
    Input<bool> parallel{"parallel", false};
    Output<Buffer<float, 1>> y{"y"};

    void generate() {
        IsaKnobs isa(isa_knobs, get_target(), "f32_gemv");
        F32GemvKnobs k;
        k.vector = isa.get("vector", int(vector));
        k.accumulators = isa.get("accumulators", int(accumulators));
        k.rows_unroll = isa.get("rows_unroll", int(rows_unroll));
        k.parallel_rows = isa.get("parallel_rows", int(parallel_rows));
        isa.done();
        Halide::Expr cols = M.dim(0).extent();
        F32GemvFuncs f = f32_gemv_algorithm(M, x, bias, cols, k.vector, k.accumulators);
        y = f.y;

        constrain_f32_gemv_buffers(M, x, bias, y);
        set_f32_gemv_estimates(M, x, bias, parallel, y, est_rows, est_cols, false);

        if (!auto_schedule) {
            f32_gemv_schedule(f, k, parallel);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::F32GemvGenerator, f32_gemv)
