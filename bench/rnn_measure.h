// Side-by-side timing of one recurrent layer: the amq runner (amq::Session over a
// quantized model), the same network unquantized on amq's f32 kernels, and the
// oneDNN f32 and int8 RNN primitives, all on the same random weights and input,
// measured in the same process, interleaved round by round, reported as medians.
// GRU: the oneDNN f32 figure is its linear-before-reset GRU (the same network as
// amq's); the int8 figure is its plain GRU (same weight shapes and work per
// step, r applied before the recurrent product), since oneDNN 2.6.3 has no int8
// LBR GRU; onednn_int8_cell() says which.
// Shared by `amq bench rnn` and the Google Benchmark suite amq_bench_rnn.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "amq/model.h"
#include "amq/rnn.h"
#include "amq/spec.h"
#include "onednn_rnn.h"

namespace amq::bench {

struct RnnBenchConfig {
    Arch arch = Arch::lstm;
    size_t input_size = 0;  // 0: hidden_size
    size_t hidden_size = 0;
    spec::Bits bits{2, 2};  // weight x activation bits of the quantized model
    int threads = 1;        // amq's Halide pool and oneDNN's OpenMP threads
    int steps = 100;        // T of one run
    int batch = 1;          // B independent sequences run together

    size_t input() const { return input_size ? input_size : hidden_size; }
};

// Throws std::invalid_argument naming the field when cfg is out of range.
void validate(const RnnBenchConfig &cfg);

// The oneDNN configuration of the same network (1 layer, batch 1). GRU + int8:
// oneDNN's plain GRU (plain_gru = true), a speed baseline only.
OnednnRnnConfig onednn_config(const RnnBenchConfig &cfg, bool int8);
// Which oneDNN cell the int8 figure of `arch` times: "lstm", or for GRU
// "gru (plain, int8; oneDNN <version> has no int8 linear-before-reset GRU)".
std::string onednn_int8_cell(Arch arch);

// PyTorch-style random weights U(-1/sqrt(H), 1/sqrt(H)) of the 1-layer network,
// from a fixed seed: the same weights for a given shape whatever the bits.
std::vector<TorchRnnLayer> random_rnn_weights(const RnnBenchConfig &cfg);
// Those weights as a float model (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0).
ModelFile float_model(const RnnBenchConfig &cfg, const std::vector<TorchRnnLayer> &weights);
// The float model quantized with the alternating quantizer to cfg.bits.w weight
// bits (refined init, 2 cycles), running cfg.bits.a activation bits (alternating,
// 2 cycles), as `amq quantize` does by default.
ModelFile quantized_model(const RnnBenchConfig &cfg, const ModelFile &float_model);
// The input sequence x [T][B][I], uniform in [-1, 1] from a fixed seed.
std::vector<float> random_rnn_input(const RnnBenchConfig &cfg);

// One sequence of T steps from zero state through an amq::Session (batch 1).
class AmqRnnRunner {
public:
    // by_step: T single step() calls instead of one run() over the sequence;
    // kernels: the session's step kernels.
    AmqRnnRunner(std::shared_ptr<const Model> model, std::vector<float> x, size_t steps,
                 bool by_step = false, size_t batch = 1,
                 StepKernels kernels = StepKernels::chosen);
    // reset() and run() (or T step() calls) over the T steps of x, h of every step
    // into output().
    void run();
    const std::vector<float> &output() const { return h_; }  // [T][1][H]
    const Model &model() const { return session_.model(); }
    const Session &session() const { return session_; }

private:
    Session session_;
    std::vector<float> x_, h_;
    size_t steps_;
    bool by_step_;
};

// Every candidate of one configuration, built once (weights quantized, oneDNN
// primitives created, inputs set).
struct RnnCandidates {
    RnnBenchConfig cfg;
    std::unique_ptr<AmqRnnRunner> amq, amq_step, amq_float;  // amq_step: step() calls
    // The same on the fused kernels wherever built and on the separate kernels
    // (StepKernels), when a fused step is built for the bits and the batch.
    std::unique_ptr<AmqRnnRunner> amq_fused, amq_step_fused, amq_separate, amq_step_separate;
    // The same weights packed for the common kernels (AMQ_VARIANTS=0), when a
    // matrix of the layer is bound to a per-problem variant.
    std::unique_ptr<AmqRnnRunner> amq_common, amq_step_common;
    std::unique_ptr<OnednnRnn> onednn_f32, onednn_int8;      // check ok() before use
};
// with_float / with_onednn / with_common: build those candidates too (amq is
// always built; with_common quantizes the model a second time, packed for the
// common kernels, when a per-problem variant applies).
RnnCandidates make_rnn_candidates(const RnnBenchConfig &cfg, bool with_float = true,
                                  bool with_onednn = true, bool with_common = true);

struct RnnTiming {
    bool ok = false;
    std::string note;        // why not measured (oneDNN cannot run this configuration)
    std::string impl;        // oneDNN implementation name
    double us_per_step = 0;  // median over the rounds
    double spread = 0;       // (p90 - p10) / median over the rounds
    int runs_per_round = 0;  // sequences timed together in each round
};

// The floor of one step of the layer on this CPU (docs/PERFORMANCE.md): its two
// binary products alone, at the XOR+popcount rate and read bandwidth measured
// in the same rounds (cpu_limits.h, FloorProbes). run(): the recurrent product
// at max(ALU, memory) plus the input product at ALU time (it is done for many
// steps at once); step(): both at max(ALU, memory), the bandwidth at the size
// of both matrices (no more than the recurrent one's alone). 0 when the CPU
// lacks AVX-512 VPOPCNTDQ.
struct RnnFloor {
    double run_us = 0, step_us = 0;
    double groups_per_ns = 0, read_gbps_run = 0, read_gbps_step = 0;
};
// The floor at the given rates (read_gbps_step is capped at read_gbps_run here).
RnnFloor rnn_floor_at(const RnnBenchConfig &cfg, double groups_per_ns, double read_gbps_run,
                      double read_gbps_step);
// The bytes of the recurrent matrix and of both (the read probes' block sizes).
std::vector<size_t> rnn_floor_blocks(const RnnBenchConfig &cfg);

struct RnnResult {
    RnnBenchConfig cfg;
    std::string isa;
    int rounds = 0;
    RnnTiming amq, amq_step, amq_float, onednn_f32, onednn_int8;
    // ok when a fused step is built for the bits and the batch; amq_fused and
    // amq_step_fused only when the build's choice (amq, amq_step) is not the
    // fused kernel, which they then are.
    RnnTiming amq_fused, amq_step_fused, amq_separate, amq_step_separate;
    // Whether amq (run()) and amq_step (step()) run on fused step kernels.
    bool fused_run = false, fused_step = false;
    RnnTiming amq_common, amq_step_common;      // ok when a matrix runs a per-problem variant
    std::string onednn_int8_cell;                     // onednn_int8_cell(cfg.arch)
    size_t model_bytes_amq = 0, model_bytes_f32 = 0;  // Model::weight_bytes()
    // max |h| difference over all T steps: amq float and amq quantized against
    // oneDNN f32 (the first checks that both run the same network).
    double max_abs_diff_float = 0, max_abs_diff_amq = 0;
    // The floor: medians over the rounds of each round's floor and rates; and
    // the medians over the rounds of amq's time / that round's floor (run() and
    // step()): 0 when not measured.
    RnnFloor floor;
    double amq_vs_floor = 0, step_vs_floor = 0;
};

// One problem timed on the fused step kernels and on the separate ones (what
// amq tune --steps writes to the schedules file's "steps"): run() per step
// (the recurrent step fused) and, for batch 1 where a full step is built,
// step() per step (the full step fused). Medians of `rounds` interleaved rounds.
struct StepChoiceTiming {
    bool has_run = false, has_step = false;  // a fused kernel is built for it
    double run_fused_us = 0, run_separate_us = 0, step_fused_us = 0, step_separate_us = 0;
};
StepChoiceTiming measure_step_choice(const RnnBenchConfig &cfg, int rounds,
                                     double min_round_ms = 5.0);

// Builds the candidates, runs each once (its output is compared), then times
// amq, amq by step, oneDNN f32, oneDNN int8 and amq float with amq's timing
// harness (amq/timing.h): warm-up, sequences per sample calibrated to about
// min_round_ms, `rounds` rounds in a new random order each; medians over the
// rounds.
// Throws std::invalid_argument for a bad cfg or rounds.
RnnResult measure_rnn(const RnnBenchConfig &cfg, int rounds, double min_round_ms = 5.0);

}  // namespace amq::bench
