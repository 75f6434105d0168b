// Generators for lstm_step_w<k_w>a<k_a>_t<iters> (one sequence) and
// lstm_step_batch_w<k_w>a<k_a>_t<iters> (a batch of sequences): see rnn_step.h.
#include "rnn_step.h"

namespace amq::gen {

template <typename Self, bool kBatch>
class LstmStepGeneratorBase : public RnnStepGeneratorBase<Self, true, kBatch> {
    static constexpr int kItems = kBatch ? 1 : 0;

public:
    Output<Buffer<float, 1 + kItems>> h{"h"};
    Output<Buffer<float, 1 + kItems>> c{"c"};
    Output<Buffer<uint8_t, 2 + kItems>> planes{"planes"};
    Output<Buffer<float, 1 + kItems>> scales{"scales"};

    void generate() {
        RnnStepFuncs f = this->declare();
        h = f.h;
        c = f.c;
        planes = f.q.bytes;
        scales = f.q.beta;
        this->constrain_state_output(h);
        this->constrain_state_output(c);
        this->finish(f, planes, scales);
    }
};

class LstmStepGenerator : public LstmStepGeneratorBase<LstmStepGenerator, false> {};
class LstmStepBatchGenerator : public LstmStepGeneratorBase<LstmStepBatchGenerator, true> {};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LstmStepGenerator, lstm_step)
HALIDE_REGISTER_GENERATOR(amq::gen::LstmStepBatchGenerator, lstm_step_batch)
