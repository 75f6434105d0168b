// oneDNN peer baseline for the amq LSTM/GRU runner: the same network (PyTorch
// nn.LSTM / nn.GRU semantics, unidirectional, time-major x[T][B][I]) run as
// oneDNN RNN primitives, in f32 or int8.
//
// - LSTM: lstm_forward. oneDNN's gate order i,f,c,o equals PyTorch's i,f,g,o.
// - GRU: lbr_gru_forward (linear-before-reset GRU), which is what PyTorch's
//   nn.GRU computes: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). oneDNN's
//   GRU gate order is u(z), r, o(n).
// - Plain GRU (plain_gru = true): gru_forward, which applies r before the
//   recurrent product, n = tanh(W_in x + W_hn (r * h) + b_in + b_hn): the same
//   gates, weight shapes (3H x I, 3H x H) and matrix work per step, but a
//   different network from PyTorch's. It is only a *speed* baseline: oneDNN
//   2.6.3 has no int8 LBR GRU ('unimplemented'), but it has an int8 plain GRU,
//   so `amq bench rnn --arch gru` times that one as the int8 figure and labels
//   it (rnn_measure.h); the f32 GRU stays LBR.
// - int8: u8 activations (scale 127, shift 128 for values in [-1, 1]), s8
//   weights with one scale per (gate, output) column shared by W_ih and W_hh,
//   f32 bias, as set by primitive_attr::set_rnn_data_qparams /
//   set_rnn_weights_qparams. A cell that the installed oneDNN cannot run in
//   int8 gives ok = false and the reason (oneDNN's error): with oneDNN 2.6.3,
//   LBR GRU + int8. Values of x outside [-1, 1] saturate in int8.
// - Each layer is its own primitive (so input_size may differ from hidden_size
//   with any number of layers); all T steps of a layer run in one call, with
//   zero initial states.
// - Threads: Debian's libdnnl uses OpenMP; `threads` is applied with
//   omp_set_num_threads on the thread that calls run()/measure().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace amq::bench {

struct OnednnRnnConfig {
    std::string arch = "lstm";  // lstm | gru
    int input_size = 0, hidden_size = 0;
    int layers = 1, batch = 1, steps = 100;
    bool int8 = false;
    // gru only: oneDNN's plain gru_forward (r applied before W_hn h) instead of
    // the linear-before-reset GRU of PyTorch; see the header comment.
    bool plain_gru = false;
    int threads = 1;  // <= 0: leave the OpenMP default
};

// The oneDNN primitive of cfg's cell: "lstm_forward", "lbr_gru_forward" or "gru_forward".
const char *onednn_primitive_name(const OnednnRnnConfig &cfg);
// The version of the oneDNN library in use, e.g. "2.6.3".
std::string onednn_version();

struct OnednnRnnResult {
    bool ok = false;
    std::string reason;      // why not ok (unsupported configuration, bad argument)
    double us_per_step = 0;  // median over rounds of (time of one run()) / steps
    std::string impl;        // oneDNN implementation name(s) of the layer primitives
};

// One layer's weights in PyTorch's layout and gate order: w_ih [G*H, I], w_hh
// [G*H, H], b_ih [G*H], b_hh [G*H], G = 4 (i,f,g,o) for LSTM, 3 (r,z,n) for GRU.
// Empty biases mean bias=False (zero).
struct TorchRnnLayer {
    std::vector<float> w_ih, w_hh, b_ih, b_hh;
};

// PyTorch-style random weights U(-1/sqrt(H), 1/sqrt(H)) for every layer, from
// a fixed seed (same config and seed, same weights; a plain GRU gets those of
// the LBR GRU).
std::vector<TorchRnnLayer> random_torch_rnn(const OnednnRnnConfig &cfg, std::uint32_t seed);

class OnednnRnn {
public:
    // Random weights (random_torch_rnn with a fixed seed) and a random input in [-1, 1].
    explicit OnednnRnn(const OnednnRnnConfig &cfg);
    // Given weights (one entry per layer). Throws std::invalid_argument naming the
    // layer, tensor and expected size when they do not match cfg.
    OnednnRnn(const OnednnRnnConfig &cfg, const std::vector<TorchRnnLayer> &weights);
    ~OnednnRnn();
    OnednnRnn(const OnednnRnn &) = delete;
    OnednnRnn &operator=(const OnednnRnn &) = delete;

    // false when oneDNN cannot build the primitives for this configuration
    // (e.g. a cell without int8 support); reason() says why. run() then throws.
    bool ok() const { return reason_.empty(); }
    const std::string &reason() const { return reason_; }
    const OnednnRnnConfig &config() const { return cfg_; }
    std::string impl_info() const;

    // x: [T][B][I] floats. Throws std::invalid_argument on a wrong size.
    void set_input(const std::vector<float> &x);
    // Forward inference over all T steps (int8: includes quantizing x to u8).
    void run();
    // Hidden state of the last layer, [T][B][H] floats (int8: dequantized).
    std::vector<float> output() const;
    // amq's timing harness (amq/timing.h): warm-up, then `rounds` samples of
    // `iters` runs each; median over the rounds of microseconds per time step.
    // Not ok: {false, reason}.
    OnednnRnnResult measure(int rounds, int iters);

private:
    struct Impl;
    OnednnRnnConfig cfg_;
    std::string reason_;
    std::unique_ptr<Impl> impl_;
};

// Builds an OnednnRnn with random weights and measures it; every failure
// (invalid config, unsupported by oneDNN) comes back as {false, reason}.
OnednnRnnResult measure_onednn_rnn(const OnednnRnnConfig &cfg, int rounds, int iters);

// f32 forward of the given PyTorch-layout weights on x [T][B][I] (cfg.plain_gru:
// the plain GRU of those weights); returns the last layer's h [T][B][H]. Throws
// std::invalid_argument on bad sizes and std::runtime_error when oneDNN refuses the configuration.
std::vector<float> onednn_rnn_forward_f32(const OnednnRnnConfig &cfg,
                                          const std::vector<TorchRnnLayer> &weights,
                                          const std::vector<float> &x);

}  // namespace amq::bench
