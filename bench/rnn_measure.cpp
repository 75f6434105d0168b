#include "rnn_measure.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>
#include <tuple>
#include <stdexcept>

#include "amq/kernels.h"
#include "amq/quantize_model.h"
#include "cpu_limits.h"
#include "amq/timing.h"

namespace amq::bench {
namespace {

constexpr std::uint32_t kWeightSeed = 20240501u, kInputSeed = 7u;

double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    if (a.size() != b.size())
        throw std::logic_error("rnn_measure: outputs of different sizes (" +
                               std::to_string(a.size()) + " and " + std::to_string(b.size()) + ")");
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

FloatTensor tensor(std::vector<int64_t> shape, const std::vector<float> &data) {
    return {std::move(shape), data};
}

}  // namespace

void validate(const RnnBenchConfig &cfg) {
    auto positive = [](const char *name, long long v) {
        if (v <= 0)
            throw std::invalid_argument(std::string("RnnBenchConfig.") + name +
                                        ": expected a positive value, got " + std::to_string(v));
    };
    positive("hidden_size", static_cast<long long>(cfg.hidden_size));
    positive("input", static_cast<long long>(cfg.input()));
    positive("threads", cfg.threads);
    positive("steps", cfg.steps);
    positive("batch", cfg.batch);
    if (cfg.bits.w < 1 || cfg.bits.w > 4 || cfg.bits.a < 1 || cfg.bits.a > 4)
        throw std::invalid_argument("RnnBenchConfig.bits: " + spec::bits_name(cfg.bits) +
                                    ", expected 1..4 each");
}

OnednnRnnConfig onednn_config(const RnnBenchConfig &cfg, bool int8) {
    OnednnRnnConfig c;
    c.arch = arch_name(cfg.arch);
    c.input_size = int(cfg.input());
    c.hidden_size = int(cfg.hidden_size);
    c.layers = 1;
    c.batch = cfg.batch;
    c.steps = cfg.steps;
    c.int8 = int8;
    c.plain_gru = int8 && cfg.arch == Arch::gru;
    c.threads = cfg.threads;
    return c;
}

std::string onednn_int8_cell(Arch arch) {
    if (arch != Arch::gru) return arch_name(arch);
    return "gru (plain, int8; oneDNN " + onednn_version() + " has no int8 linear-before-reset GRU)";
}

std::vector<TorchRnnLayer> random_rnn_weights(const RnnBenchConfig &cfg) {
    validate(cfg);
    return random_torch_rnn(onednn_config(cfg, false), kWeightSeed);
}

ModelFile float_model(const RnnBenchConfig &cfg, const std::vector<TorchRnnLayer> &weights) {
    validate(cfg);
    if (weights.size() != 1)
        throw std::invalid_argument("float_model: expected the weights of 1 layer, got " +
                                    std::to_string(weights.size()));
    ModelFile m;
    m.shape.arch = cfg.arch;
    m.shape.layers = 1;
    m.shape.input_size = cfg.input();
    m.shape.hidden_size = cfg.hidden_size;
    const int64_t GH = int64_t(m.shape.gates()) * int64_t(cfg.hidden_size);
    const TorchRnnLayer &w = weights[0];
    m.floats["weight_ih_l0"] = tensor({GH, int64_t(cfg.input())}, w.w_ih);
    m.floats["weight_hh_l0"] = tensor({GH, int64_t(cfg.hidden_size)}, w.w_hh);
    m.floats["bias_ih_l0"] = tensor({GH}, w.b_ih);
    m.floats["bias_hh_l0"] = tensor({GH}, w.b_hh);
    for (const auto &[name, t] : m.floats) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        if (size_t(n) != t.data.size())
            throw std::invalid_argument("float_model: tensor '" + name + "' holds " +
                                        std::to_string(t.data.size()) + " floats, expected " +
                                        std::to_string(n));
    }
    return m;
}

ModelFile quantized_model(const RnnBenchConfig &cfg, const ModelFile &float_model) {
    ModelQuantizeOptions o;
    o.weights.method = Method::alternating;
    o.weights.init = Init::refined;
    o.weights.bits = cfg.bits.w;
    o.weights.iters = 2;
    o.weights.threads = 0;  // all hardware threads: quantizing is not timed
    o.k_a = cfg.bits.a;
    o.act_method = "alternating";
    o.act_iters = 2;
    return quantize_model(float_model, o);
}

std::vector<float> random_rnn_input(const RnnBenchConfig &cfg) {
    validate(cfg);
    std::mt19937 rng(kInputSeed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> x(size_t(cfg.steps) * size_t(cfg.batch) * cfg.input());
    for (float &e : x) e = u(rng);
    return x;
}

AmqRnnRunner::AmqRnnRunner(std::shared_ptr<const Model> model, std::vector<float> x, size_t steps,
                           bool by_step, size_t batch, StepKernels kernels)
    : session_(std::move(model), batch, kernels), x_(std::move(x)), steps_(steps), by_step_(by_step) {
    const RnnShape &s = session_.model().shape();
    if (x_.size() != steps_ * batch * s.input_size)
        throw std::invalid_argument("AmqRnnRunner: x must be [T=" + std::to_string(steps_) +
                                    "][B=" + std::to_string(batch) +
                                    "][I=" + std::to_string(s.input_size) + "] floats, got " +
                                    std::to_string(x_.size()));
    h_.assign(steps_ * batch * s.hidden_size, 0.f);
}

void AmqRnnRunner::run() {
    session_.reset();
    if (!by_step_) {
        session_.run(x_.data(), steps_, h_.data());
        return;
    }
    const size_t B = session_.batch(), I = session_.model().shape().input_size * B,
                 H = session_.model().shape().hidden_size * B;
    for (size_t t = 0; t < steps_; ++t) {
        const float *h = session_.step(&x_[t * I]);
        std::copy(h, h + H, &h_[t * H]);
    }
}

std::vector<size_t> rnn_floor_blocks(const RnnBenchConfig &cfg) {
    const size_t rows = (cfg.arch == Arch::lstm ? 4 : 3) * cfg.hidden_size;
    const size_t hh = product_weight_bytes(rows, cfg.hidden_size, cfg.bits.w),
                 ih = product_weight_bytes(rows, cfg.input(), cfg.bits.w);
    return {hh, hh + ih};
}

RnnFloor rnn_floor_at(const RnnBenchConfig &cfg, double groups_per_ns, double read_gbps_run,
                      double read_gbps_step) {
    RnnFloor f;
    if (groups_per_ns <= 0) return f;
    f.groups_per_ns = groups_per_ns;
    const size_t G = cfg.arch == Arch::lstm ? 4 : 3, rows = G * cfg.hidden_size,
                 B = size_t(cfg.batch);
    const int kw = cfg.bits.w, ka = cfg.bits.a;
    f.read_gbps_run = read_gbps_run;
    // Both matrices are read every step: the bandwidth of their total size (no
    // more than that of the recurrent one alone, so that step() >= run()).
    f.read_gbps_step = std::min(read_gbps_run, read_gbps_step);
    const ProductFloor hh = product_floor(rows, cfg.hidden_size, kw, ka, B, groups_per_ns,
                                          f.read_gbps_run),
                       ih = product_floor(rows, cfg.input(), kw, ka, B, groups_per_ns,
                                          f.read_gbps_step);
    f.run_us = hh.bound_us() + ih.alu_us;
    f.step_us = product_floor(rows, cfg.hidden_size, kw, ka, B, groups_per_ns,
                              f.read_gbps_step)
                    .bound_us() +
                ih.bound_us();
    return f;
}

RnnCandidates make_rnn_candidates(const RnnBenchConfig &cfg, bool with_float, bool with_onednn,
                                  bool with_common) {
    validate(cfg);
    set_num_threads(cfg.threads);
    RnnCandidates c;
    c.cfg = cfg;
    const std::vector<TorchRnnLayer> weights = random_rnn_weights(cfg);
    const std::vector<float> x = random_rnn_input(cfg);
    const ModelFile f = float_model(cfg, weights);
    const auto quantized = Model::from_file(quantized_model(cfg, f));
    const size_t T = size_t(cfg.steps), B = size_t(cfg.batch);
    c.amq = std::make_unique<AmqRnnRunner>(quantized, x, T, false, B);
    c.amq_step = std::make_unique<AmqRnnRunner>(quantized, x, T, true, B);
    if (fused_step_built(cfg.bits.w, cfg.bits.a, 2, B)) {
        for (auto [kernels, run, step] :
             {std::tuple{StepKernels::fused, &c.amq_fused, &c.amq_step_fused},
              std::tuple{StepKernels::separate, &c.amq_separate, &c.amq_step_separate}}) {
            *run = std::make_unique<AmqRnnRunner>(quantized, x, T, false, B, kernels);
            *step = std::make_unique<AmqRnnRunner>(quantized, x, T, true, B, kernels);
        }
    }
    const size_t G = cfg.arch == Arch::lstm ? 4 : 3;
    if (with_common &&
        (BinaryMatrix::variant_for(cfg.bits.w, cfg.bits.a, G * cfg.hidden_size, cfg.hidden_size) ||
         BinaryMatrix::variant_for(cfg.bits.w, cfg.bits.a, G * cfg.hidden_size, cfg.input()))) {
        setenv("AMQ_VARIANTS", "0", 1);  // read when the weights are packed
        const auto common = Model::from_file(quantized_model(cfg, f));
        unsetenv("AMQ_VARIANTS");
        c.amq_common = std::make_unique<AmqRnnRunner>(common, x, T, false, B);
        c.amq_step_common = std::make_unique<AmqRnnRunner>(common, x, T, true, B);
    }
    if (with_float)
        c.amq_float = std::make_unique<AmqRnnRunner>(Model::from_file(f), x, T, false, B);
    if (with_onednn) {
        for (bool int8 : {false, true}) {
            auto r = std::make_unique<OnednnRnn>(onednn_config(cfg, int8), weights);
            if (r->ok()) r->set_input(x);
            (int8 ? c.onednn_int8 : c.onednn_f32) = std::move(r);
        }
    }
    return c;
}

namespace {

// The timing of measure_rnn and measure_step_choice: `rounds` interleaved rounds
// of about min_round_ms each, no stability stop, no untimed call per sample (a
// whole sequence is long enough). Throws std::invalid_argument naming `caller`
// when rounds < 1.
timing::Options rnn_rounds(const char *caller, int rounds, double min_round_ms) {
    if (rounds <= 0)
        throw std::invalid_argument(std::string(caller) + ": rounds = " + std::to_string(rounds) +
                                    ", expected at least 1");
    timing::Options o;
    o.round_ms = min_round_ms;
    o.min_rounds = o.max_rounds = rounds;
    o.stable = 0;
    o.warm_each_round = false;
    return o;
}

}  // namespace

RnnResult measure_rnn(const RnnBenchConfig &cfg, int rounds, double min_round_ms) {
    const timing::Options o = rnn_rounds("measure_rnn", rounds, min_round_ms);
    RnnCandidates c = make_rnn_candidates(cfg, true, true);
    RnnResult res;
    res.cfg = cfg;
    res.isa = isa_name(active_isa());
    res.rounds = rounds;
    res.onednn_int8_cell = onednn_int8_cell(cfg.arch);
    res.model_bytes_amq = c.amq->model().weight_bytes();
    res.model_bytes_f32 = c.amq_float->model().weight_bytes();

    std::vector<RnnTiming *> timings;
    std::vector<timing::Candidate> cands;
    auto add = [&](RnnTiming *t, std::function<void()> run) {
        timings.push_back(t);
        cands.push_back({std::move(run), nullptr, nullptr, double(cfg.steps)});
    };
    add(&res.amq, [&] { c.amq->run(); });
    for (auto [rnn, timing] : {std::pair{c.onednn_f32.get(), &res.onednn_f32},
                               std::pair{c.onednn_int8.get(), &res.onednn_int8}}) {
        if (rnn->ok()) {
            timing->impl = rnn->impl_info();
            add(timing, [rnn = rnn] { rnn->run(); });
        } else {
            timing->note = rnn->reason();
        }
    }
    add(&res.amq_float, [&] { c.amq_float->run(); });
    add(&res.amq_step, [&] { c.amq_step->run(); });
    res.fused_run = c.amq->session().fused(StepCall::run);
    res.fused_step = c.amq_step->session().fused(StepCall::step) ||
                     c.amq_step->session().fused(StepCall::run);
    if (c.amq_separate) {
        add(&res.amq_separate, [&] { c.amq_separate->run(); });
        add(&res.amq_step_separate, [&] { c.amq_step_separate->run(); });
        // The fused kernels where the build chose the separate ones.
        if (!res.fused_run) add(&res.amq_fused, [&] { c.amq_fused->run(); });
        if (c.amq_step->session().fused(StepCall::step) !=
            c.amq_step_fused->session().fused(StepCall::step))
            add(&res.amq_step_fused, [&] { c.amq_step_fused->run(); });
    }
    if (c.amq_common) {
        add(&res.amq_common, [&] { c.amq_common->run(); });
        add(&res.amq_step_common, [&] { c.amq_step_common->run(); });
    }

    // The floor's rates in the same rounds.
    FloorProbes probes(rnn_floor_blocks(cfg));
    probes.add_to(cands);

    // Every candidate ran once for the outputs compared here; the harness warms
    // up and calibrates again. A whole sequence is long enough not to need an
    // untimed call before each sample.
    for (auto &k : cands) k.run();
    if (c.onednn_f32->ok()) {
        const std::vector<float> ref = c.onednn_f32->output();
        res.max_abs_diff_float = max_abs_diff(c.amq_float->output(), ref);
        res.max_abs_diff_amq = max_abs_diff(c.amq->output(), ref);
    }
    const std::vector<timing::Result> t = timing::time_interleaved(cands, o);
    for (size_t i = 0; i < timings.size(); ++i) {
        timings[i]->ok = true;
        timings[i]->us_per_step = t[i].median_us;
        timings[i]->spread = t[i].spread;
        timings[i]->runs_per_round = t[i].calls;
    }
    // Each round's floor, and amq's time over it round by round.
    const std::vector<double> gpn = probes.groups_per_ns(t), run_gbps = probes.read_gbps(t, 0),
                              step_gbps = probes.read_gbps(t, 1);
    std::vector<double> run_floor, step_floor;
    for (size_t r = 0; r < gpn.size(); ++r) {
        const RnnFloor f = rnn_floor_at(cfg, gpn[r], run_gbps[r], step_gbps[r]);
        run_floor.push_back(f.run_us);
        step_floor.push_back(f.step_us);
    }
    if (!gpn.empty() && timing::median(gpn) > 0) {
        res.floor = rnn_floor_at(cfg, timing::median(gpn), timing::median(run_gbps),
                                 timing::median(step_gbps));
        res.floor.run_us = timing::median(run_floor);
        res.floor.step_us = timing::median(step_floor);
        auto samples = [&](const RnnTiming *of) {
            for (size_t i = 0; i < timings.size(); ++i)
                if (timings[i] == of) return t[i].samples;
            return std::vector<double>();
        };
        res.amq_vs_floor = timing::median_ratio(samples(&res.amq), run_floor);
        res.step_vs_floor = timing::median_ratio(samples(&res.amq_step), step_floor);
    }
    return res;
}

StepChoiceTiming measure_step_choice(const RnnBenchConfig &cfg, int rounds, double min_round_ms) {
    const timing::Options o = rnn_rounds("measure_step_choice", rounds, min_round_ms);
    RnnCandidates c = make_rnn_candidates(cfg, false, false, false);
    StepChoiceTiming res;
    if (!c.amq_fused) return res;
    res.has_run = c.amq_fused->session().fused(StepCall::run);
    res.has_step = c.amq_step_fused->session().fused(StepCall::step);
    std::vector<double *> out;
    std::vector<timing::Candidate> cands;
    auto add = [&](double *us, AmqRnnRunner *r) {
        out.push_back(us);
        cands.push_back({[r] { r->run(); }, nullptr, nullptr, double(cfg.steps)});
    };
    if (res.has_run) {
        add(&res.run_fused_us, c.amq_fused.get());
        add(&res.run_separate_us, c.amq_separate.get());
    }
    if (res.has_step) {
        add(&res.step_fused_us, c.amq_step_fused.get());
        add(&res.step_separate_us, c.amq_step_separate.get());
    }
    if (cands.empty()) return res;
    for (auto &k : cands) k.run();
    const std::vector<timing::Result> t = timing::time_interleaved(cands, o);
    for (size_t i = 0; i < cands.size(); ++i) *out[i] = t[i].median_us;
    return res;
}

}  // namespace amq::bench
