// Generator for quantize_act_ternary: see quantize_act_ternary.h.
#include <stdexcept>

#include "quantize_act_ternary.h"

namespace amq::gen {

class QuantizeActTernaryGenerator : public Halide::Generator<QuantizeActTernaryGenerator> {
public:
    GeneratorParam<int> lanes{"lanes", 16, 1, 64};
    GeneratorParam<int> est_n{"est_n", 1000};

    Input<Buffer<float, 1>> x{"x"};
    Input<int32_t> n{"n", 1, 1, 1 << 30};
    Output<Buffer<uint8_t, 2>> bytes{"bytes"};
    Output<Buffer<float, 1>> beta{"beta"};

    void generate() {
        QuantizeActTernaryKnobs k;
        k.lanes = lanes;
        const std::string bad = quantize_act_ternary_knobs_error(k);
        if (!bad.empty()) throw std::invalid_argument("quantize_act_ternary generator: " + bad);
        QuantizeActTernaryFuncs f = quantize_act_ternary_algorithm(x, n, lanes);
        bytes = f.bytes;
        beta = f.beta;

        x.dim(0).set_bounds(0, ((n + 63) / 64) * 64);
        bytes.dim(0).set_bounds(0, ((n + 63) / 64) * 8);
        bytes.dim(1).set_bounds(0, 2);
        bytes.dim(1).set_stride(bytes.dim(0).extent());
        beta.dim(0).set_bounds(0, 2);

        x.set_estimates({{0, ((int(est_n) + 63) / 64) * 64}});
        n.set_estimate(est_n);
        bytes.set_estimates({{0, ((int(est_n) + 63) / 64) * 8}, {0, 2}});
        beta.set_estimates({{0, 2}});

        if (!auto_schedule) quantize_act_ternary_schedule(f, k);
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::QuantizeActTernaryGenerator, quantize_act_ternary)
