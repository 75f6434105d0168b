// Generators for lstm_step_w<k_w>a<k_a>_t<iters> (one sequence),
// lstm_step_batch_w<k_w>a<k_a>_t<iters> (a batch of sequences) and
// lstm_full_step_w<k_w>a<k_a>_t<iters> (one sequence from x_t): see rnn_step.h.
#include "rnn_step.h"

namespace amq::gen {

template <typename Self, StepForm kForm>
class LstmStepGeneratorBase : public RnnStepGeneratorBase<Self, true, kForm> {
    static constexpr int kItems = kForm == StepForm::batch ? 1 : 0;

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

class LstmStepGenerator : public LstmStepGeneratorBase<LstmStepGenerator, StepForm::step> {};
class LstmStepBatchGenerator
    : public LstmStepGeneratorBase<LstmStepBatchGenerator, StepForm::batch> {};
class LstmFullStepGenerator : public LstmStepGeneratorBase<LstmFullStepGenerator, StepForm::full> {};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LstmStepGenerator, lstm_step)
HALIDE_REGISTER_GENERATOR(amq::gen::LstmStepBatchGenerator, lstm_step_batch)
HALIDE_REGISTER_GENERATOR(amq::gen::LstmFullStepGenerator, lstm_full_step)
