// Generator for quantize_act_a<k>_t<T>: see quantize_act.h.
#include <stdexcept>

#include "quantize_act.h"
#include "isa_knobs.h"

namespace amq::gen {

class QuantizeActGenerator : public Halide::Generator<QuantizeActGenerator> {
public:
    GeneratorParam<int> k{"k", 2, 1, 4};
    GeneratorParam<int> iters{"iters", 2, 0, 8};
    GeneratorParam<int> lanes{"lanes", 16, 1, 64};
    GeneratorParam<int> pack_vector{"pack_vector", 8, 8, 64};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Estimated n for the autoschedulers; not a multiple of the lanes, since
    // Adams2019 fails on the then empty n % lanes tail loop.
    GeneratorParam<int> est_n{"est_n", 1000};

    Input<Buffer<float, 2>> x{"x"};  // [items][padded n]
    Input<int32_t> n{"n", 1, 1, 1 << 30};
    Output<Buffer<uint8_t, 3>> bytes{"bytes"};  // [items][k][words * 8]
    Output<Buffer<float, 2>> beta{"beta"};      // [items][k]

    void generate() {
        IsaKnobs isa(isa_knobs, get_target(), "quantize_act");
        QuantizeActKnobs kn;
        kn.lanes = isa.get("lanes", int(lanes));
        kn.pack_vector = isa.get("pack_vector", int(pack_vector));
        isa.done();
        const std::string bad = quantize_act_knobs_error(kn);
        if (!bad.empty()) throw std::invalid_argument("quantize_act generator: " + bad);
        QuantizeActFuncs f = quantize_act_algorithm(x, n, k, iters, kn.lanes, !auto_schedule);
        bytes = f.bytes;
        beta = f.beta;

        constrain_quantize_act_buffers(x, n, bytes, beta, k, true);
        set_quantize_act_estimates(x, n, bytes, beta, k, est_n, 1);

        if (!auto_schedule) quantize_act_schedule(f, kn);
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::QuantizeActGenerator, quantize_act)
