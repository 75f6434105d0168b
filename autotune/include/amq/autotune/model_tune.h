// Tuning for a model: every (pipeline, shape, bits) problem the runner
// (runtime/include/amq/rnn.h) calls for a model, deduplicated, tuned one after
// the other within one budget split between them by their expected share of
// the model's time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "amq/autotune/problem.h"
#include "amq/autotune/tuner.h"
#include "amq/model.h"

namespace amq::tune {

// The steps of Session::run's chunk (Session::kRunChunk): the input products
// of a chunk are one bgemm over this many steps x batch items.
constexpr size_t kModelRunChunk = 64;

struct ModelProblem {
    Problem problem;
    // What the runner uses it for ("layer 0 recurrent product", ...).
    std::vector<std::string> uses;
    double calls = 0;    // calls per 64-step sequence of `batch` items
    double call_us = 0;  // a rough time of one call, from the problem's work
    // Expected share of the model's time: calls x call_us.
    double expected_us() const { return calls * call_us; }
};

// The problems the runner calls for `model` with `batch` sequences per step,
// the kernels running on `threads` threads, bgemm in the weight layout
// `layout` / `tile` (bgemv's). In order: bgemv, bgemm (which reads bgemv's
// layout), f32_gemv, the cell, quantize_act; largest work first within each.
//   quantized matrix, per layer and direction (amq::weight_matrices): the
//     recurrent product (bgemv G H x h_size for one sequence, bgemm with
//     `batch` items for more) and the projection W_hr (proj_size x H) alike;
//     the input product, a language model step by step (bgemv G H x I, or bgemm
//     with `batch`), any other model as Session::run does it (bgemm over 64
//     steps x batch items);
//   float matrix (a float model, or an .amq whose matrix was kept float):
//     f32_gemv, once per item and step;
//   the cell (lstm_cell / gru_cell) at H x batch, per layer and step;
//   a language model's decoder: bgemv / bgemm V x H if quantized, else f32_gemv;
//   quantized models: quantize_act at the input length I, at h_size, at the
//     width of both directions' outputs (bidirectional) and at H (the
//     projection's input), with the model's activation bits and cycles (0 for
//     greedy).
// Equal problems are listed once (their uses and calls summed). Throws
// std::invalid_argument when batch or threads is 0.
std::vector<ModelProblem> model_problems(const ModelFile &model, size_t batch, int threads,
                                         const std::string &layout, int tile);

// bgemv's layout and tile as the build will give them to bgemm in the kernel
// variant `isa`: the "pipelines" entry of that variant's section of the
// schedules file at `path` ("isa" -> isa, else the top level) if it exists and
// has one, else the hand defaults.
std::pair<std::string, int> bgemm_weight_layout(const std::string &schedules_path,
                                                const std::string &isa = "");

// The search budget of each of `problems` out of `budget_seconds`: half split
// evenly (every search needs compiles, whatever its kernel's time), half by
// expected_us(). tune_model hands time a search did not use on to the ones
// after it, in the same proportions.
std::vector<double> split_budget(const std::vector<ModelProblem> &problems, double budget_seconds);

struct ModelTuneCallbacks : TuneCallbacks {
    // Before problem `index` (0-based) of `count`, with its search budget.
    std::function<void(size_t index, size_t count, const ModelProblem &, double budget)> on_problem;
    // After it.
    std::function<void(size_t index, size_t count, const TuneReport &)> on_done;
};

// Tunes every problem in order with `base` (records, schedules, timings,
// timeout, seed; its problem, budget_seconds and max_trials are replaced: each
// search gets its share of `budget_seconds` and at most `max_trials_each`
// trials, 0 = no limit). A bgemm problem takes bgemv's layout from the
// schedules file as it is when its turn comes (bgemm_weight_layout), so that
// it is tuned for the weights the build will give it.
std::vector<TuneReport> tune_model(std::vector<ModelProblem> problems, const TuneOptions &base,
                                   double budget_seconds, int max_trials_each,
                                   const ModelTuneCallbacks &callbacks = {});

}  // namespace amq::tune
