// Generators for quantize_act_a<k>_t<T> (one vector) and quantize_act_batch_a<k>_t<T>
// (a batch of vectors of one length): see quantize_act.h.
#include <stdexcept>

#include "generator_aliases.h"
#include "quantize_act.h"
#include "isa_knobs.h"

namespace amq::gen {

// kBatch: x, bytes and beta have the items as their last dimension.
template <typename Self, bool kBatch>
class QuantizeActGeneratorBase : public Halide::Generator<Self> {
public:
    static constexpr int kItems = kBatch ? 1 : 0;

    GeneratorParam<int> k{"k", 2, 1, 4};
    GeneratorParam<int> iters{"iters", 2, 0, 8};
    GeneratorParam<int> lanes{"lanes", 16, 1, kSumLanes};
    GeneratorParam<int> pack_vector{"pack_vector", 8, 8, 64};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Estimated n for the autoschedulers; not a multiple of the lanes, since
    // Adams2019 fails on the then empty n % lanes tail loop.
    GeneratorParam<int> est_n{"est_n", 1000};

    Input<Buffer<float, 1 + kItems>> x{"x"};  // [items][padded n]
    Input<int32_t> n{"n", 1, 1, 1 << 30};
    Output<Buffer<uint8_t, 2 + kItems>> bytes{"bytes"};  // [items][k][words * 8]
    Output<Buffer<float, 1 + kItems>> beta{"beta"};      // [items][k]

    void generate() {
        IsaKnobs isa(isa_knobs, this->get_target(), "quantize_act");
        QuantizeActKnobs kn;
        kn.lanes = isa.get("lanes", int(lanes));
        kn.pack_vector = isa.get("pack_vector", int(pack_vector));
        isa.done();
        const std::string bad = quantize_act_knobs_error(kn);
        if (!bad.empty()) throw std::invalid_argument("quantize_act generator: " + bad);
        QuantizeActFuncs f =
            quantize_act_algorithm(x, n, k, iters, !this->auto_schedule, kBatch);
        bytes = f.bytes;
        beta = f.beta;

        constrain_quantize_act_buffers(x, n, bytes, beta, k, kBatch);
        // A batch is estimated as a run() chunk's inputs: 64 vectors.
        set_quantize_act_estimates(x, n, bytes, beta, k, est_n, kBatch ? 64 : 0);

        if (!this->auto_schedule) quantize_act_schedule(f, kn);
    }
};

class QuantizeActGenerator : public QuantizeActGeneratorBase<QuantizeActGenerator, false> {};
class QuantizeActBatchGenerator : public QuantizeActGeneratorBase<QuantizeActBatchGenerator, true> {};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::QuantizeActGenerator, quantize_act)
HALIDE_REGISTER_GENERATOR(amq::gen::QuantizeActBatchGenerator, quantize_act_batch)
