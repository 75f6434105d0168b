// Generator for quantize_act_ternary: see quantize_act_ternary.h.
#include <stdexcept>

#include "quantize_act.h"
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

        // quantize_act's buffers with its two planes.
        constrain_quantize_act_buffers(x, n, bytes, beta, 2);
        set_quantize_act_estimates(x, n, bytes, beta, 2, est_n);

        if (!auto_schedule) quantize_act_ternary_schedule(f, k);
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::QuantizeActTernaryGenerator, quantize_act_ternary)
