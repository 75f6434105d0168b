// Generator for lstm_step_w<k_w>a<k_a>_t<iters>: see rnn_step.h.
#include "rnn_step.h"

namespace amq::gen {

class LstmStepGenerator : public RnnStepGeneratorBase<LstmStepGenerator, true> {
public:
    Output<Buffer<float, 1>> h{"h"};
    Output<Buffer<float, 1>> c{"c"};
    Output<Buffer<uint8_t, 2>> planes{"planes"};
    Output<Buffer<float, 1>> scales{"scales"};

    void generate() {
        RnnStepFuncs f = declare();
        h = f.h;
        c = f.c;
        planes = f.q.bytes;
        scales = f.q.beta;
        constrain_state_output(h);
        constrain_state_output(c);
        finish(f, planes, scales);
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::LstmStepGenerator, lstm_step)
