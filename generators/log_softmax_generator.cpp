// Generator for log_softmax: see log_softmax.h.
#include <stdexcept>

#include "log_softmax.h"
#include "isa_knobs.h"

namespace amq::gen {

class LogSoftmaxGenerator : public Halide::Generator<LogSoftmaxGenerator> {
public:
    GeneratorParam<int> vector{"vector", 16, 1, 64};
    GeneratorParam<int> unroll{"unroll", 1, 1, 8};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    GeneratorParam<int> est_n{"est_n", 10000};

    Input<Buffer<float, 1>> x{"x"};
    Output<Buffer<float, 1>> y{"y"};
    Output<Buffer<float, 0>> lse{"lse"};
    Output<Buffer<float, 1>> block_max{"block_max"};

    void generate() {
        IsaKnobs isa(isa_knobs, get_target(), "log_softmax");
        LogSoftmaxKnobs k;
        k.vector = isa.get("vector", int(vector));
        k.unroll = isa.get("unroll", int(unroll));
        isa.done();
        const std::string bad = log_softmax_knobs_error(k);
        if (!bad.empty()) throw std::invalid_argument("log_softmax generator: " + bad);
        Halide::Expr n = x.dim(0).extent();
        LogSoftmaxFuncs f = log_softmax_algorithm(x, n, k.vector, k.unroll);
        y = f.y;
        lse = f.lse;
        block_max = f.block_max;

        x.dim(0).set_min(0);
        y.dim(0).set_bounds(0, n);
        block_max.dim(0).set_bounds(0, (n + kLogSoftmaxBlock - 1) / kLogSoftmaxBlock);

        x.set_estimates({{0, est_n}});
        y.set_estimates({{0, est_n}});
        block_max.set_estimates({{0, (int(est_n) + kLogSoftmaxBlock - 1) / kLogSoftmaxBlock}});

        if (!auto_schedule) log_softmax_schedule(f, k);
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LogSoftmaxGenerator, log_softmax)
