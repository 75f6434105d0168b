// Generators for gru_step_w<k_w>a<k_a>_t<iters> (one sequence),
// gru_step_batch_w<k_w>a<k_a>_t<iters> (a batch of sequences) and
// gru_full_step_w<k_w>a<k_a>_t<iters> (one sequence from x_t): see rnn_step.h.
#include "rnn_step.h"

namespace amq::gen {

template <typename Self, StepForm kForm>
class GruStepGeneratorBase : public RnnStepGeneratorBase<Self, false, kForm> {
    static constexpr int kItems = kForm == StepForm::batch ? 1 : 0;

public:
    Output<Buffer<float, 1 + kItems>> h{"h"};
    Output<Buffer<uint8_t, 2 + kItems>> planes{"planes"};
    Output<Buffer<float, 1 + kItems>> scales{"scales"};

    void generate() {
        RnnStepFuncs f = this->declare();
        h = f.h;
        planes = f.q.bytes;
        scales = f.q.beta;
        this->constrain_state_output(h);
        this->finish(f, planes, scales);
    }
};

class GruStepGenerator : public GruStepGeneratorBase<GruStepGenerator, StepForm::step> {};
class GruStepBatchGenerator
    : public GruStepGeneratorBase<GruStepBatchGenerator, StepForm::batch> {};
class GruFullStepGenerator : public GruStepGeneratorBase<GruFullStepGenerator, StepForm::full> {};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::GruStepGenerator, gru_step)
HALIDE_REGISTER_GENERATOR(amq::gen::GruStepBatchGenerator, gru_step_batch)
HALIDE_REGISTER_GENERATOR(amq::gen::GruFullStepGenerator, gru_full_step)
