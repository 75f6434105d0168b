// log_softmax as a tunable pipeline: the algorithm and schedule of
// generators/log_softmax.h with the buffer constraints of
// log_softmax_generator.cpp, checked against ref::log_softmax (log-probabilities
// and lse within float rounding) and the block maxima exactly.
#include "log_softmax_pipeline.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "amq/reference.h"
#include "log_softmax.h"
#include "pipeline_data.h"

namespace amq::tune {
namespace {

// Edge shape: two full blocks of 64 and a partial third.
constexpr size_t kEdgeLength = 150;

struct LsParams {
    Halide::ImageParam x{Halide::Float(32), 1, "x"};
};

gen::LogSoftmaxFuncs declare(LsParams &p, const gen::LogSoftmaxKnobs &k) {
    Halide::Expr n = p.x.dim(0).extent();
    gen::LogSoftmaxFuncs f = gen::log_softmax_algorithm(p.x, n, k.vector, k.unroll);
    p.x.dim(0).set_min(0);
    f.y.output_buffer().dim(0).set_bounds(0, n);
    f.block_max.output_buffer().dim(0).set_bounds(
        0, (n + gen::kLogSoftmaxBlock - 1) / gen::kLogSoftmaxBlock);
    return f;
}

gen::LogSoftmaxKnobs to_knobs(const Knobs &k) {
    gen::LogSoftmaxKnobs g;
    g.vector = k.at("vector").get<int>();
    g.unroll = k.at("unroll").get<int>();
    return g;
}

class LsInvocation : public Invocation {
public:
    LsInvocation(size_t n, uint64_t seed) : n_(n), blocks_(ceil_div(n, gen::kLogSoftmaxBlock)) {
        xv_ = random_floats(n, 3.0f, seed);
        x_ = Halide::Runtime::Buffer<float>(xv_.data(), int(n));
        y_ = Halide::Runtime::Buffer<float>(int(n));
        lse_ = Halide::Runtime::Buffer<float, 0>::make_scalar();
        bm_ = Halide::Runtime::Buffer<float>(int(blocks_));
        want_.resize(n);
        want_lse_ = ref::log_softmax(xv_.data(), n, want_.data());
        want_bm_.assign(blocks_, -std::numeric_limits<float>::infinity());
        for (size_t i = 0; i < n; ++i)
            want_bm_[i / gen::kLogSoftmaxBlock] = std::max(want_bm_[i / gen::kLogSoftmaxBlock], xv_[i]);
    }

    const void *arg(const std::string &name) const override {
        return name == "x" ? x_.raw_buffer() : nullptr;
    }
    halide_buffer_t *output() override { return y_.raw_buffer(); }
    std::vector<halide_buffer_t *> outputs() override {
        return {y_.raw_buffer(), lse_.raw_buffer(), bm_.raw_buffer()};
    }
    void poison_output() override {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        y_.fill(nan);
        lse_.fill(nan);
        bm_.fill(nan);
    }
    std::string check() const override {
        const std::string where = std::to_string(n_) + " logits";
        const double round = 1.2e-7 * std::abs(want_lse_);
        std::string bad = compare_values(
            1, [&](size_t) { return double(lse_()); }, [&](size_t) { return want_lse_; },
            [&](size_t) { return 2e-6 * std::max(1.0, std::abs(want_lse_)); },
            [](size_t) { return std::string("lse"); }, "lse", where);
        if (!bad.empty()) return bad;
        bad = compare_values(
            n_, [&](size_t i) { return double(y_(int(i))); },
            [&](size_t i) { return double(want_[i]); },
            [&](size_t i) { return 4e-6 * std::max(1.0, std::abs(double(want_[i]))) + round; },
            [](size_t i) { return "logit " + std::to_string(i); }, "log-probabilities", where);
        if (!bad.empty()) return bad;
        return compare_values(
            blocks_, [&](size_t b) { return double(bm_(int(b))); },
            [&](size_t b) { return double(want_bm_[b]); }, [](size_t) { return 0.0; },
            [](size_t b) { return "block " + std::to_string(b); }, "block maxima", where);
    }

private:
    size_t n_, blocks_;
    std::vector<float> xv_, want_, want_bm_;
    double want_lse_ = 0;
    Halide::Runtime::Buffer<float> x_, y_, bm_;
    Halide::Runtime::Buffer<float, 0> lse_;
};

}  // namespace

LogSoftmaxPipeline::LogSoftmaxPipeline(const Problem &problem, const Halide::Target &)
    : TunablePipeline(problem, builtin_space("log_softmax")) {
    if (problem.cols < 1 || problem.cols > (1u << 30) || problem.rows != 1 || problem.batch != 1)
        throw std::invalid_argument("log_softmax: shape " + problem.shape_str() +
                                    " (expected one vector of 1..2^30 logits)");
    if (problem.k_w != 0 || problem.k_a != 0 || problem.iters != 0 || !problem.layout.empty())
        throw std::invalid_argument("log_softmax: bits, iters and weight layout do not apply");
    if (problem.threads < 1)
        throw std::invalid_argument("log_softmax: threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

std::string LogSoftmaxPipeline::prune(Knobs &k) const {
    const gen::LogSoftmaxKnobs g = to_knobs(k);
    if (const std::string e = gen::log_softmax_knobs_error(g); !e.empty()) return e;
    const size_t n = problem().cols;
    if (g.vector > 1 && size_t(g.vector) > n)
        return "vector " + std::to_string(g.vector) + " exceeds the " + std::to_string(n) +
               " logits";
    if (g.unroll > 1 && size_t(g.vector * g.unroll) > n)
        return "vector x unroll " + std::to_string(g.vector * g.unroll) + " exceeds the " +
               std::to_string(n) + " logits";
    return "";
}

Halide::Pipeline LogSoftmaxPipeline::build(const Knobs &knobs) const {
    const gen::LogSoftmaxKnobs g = to_knobs(knobs);
    LsParams p;
    gen::LogSoftmaxFuncs f = declare(p, g);
    gen::log_softmax_schedule(f, g);
    return Halide::Pipeline({f.y, f.lse, f.block_max});
}

Halide::Pipeline LogSoftmaxPipeline::build_unscheduled(const Knobs &layout) const {
    gen::LogSoftmaxKnobs g;
    g.vector = layout.at("vector").get<int>();
    LsParams p;
    gen::LogSoftmaxFuncs f = declare(p, g);
    const int n = int(problem().cols);
    p.x.set_estimates({{0, n}});
    f.y.set_estimates({{0, n}});
    f.block_max.set_estimates({{0, int(ceil_div(size_t(n), gen::kLogSoftmaxBlock))}});
    return Halide::Pipeline({f.y, f.lse, f.block_max});
}

std::vector<Knobs> LogSoftmaxPipeline::autoscheduler_layouts() const {
    return {{{"vector", 16}}};  // the algorithm's lanes (no data layout to choose)
}

std::unique_ptr<Invocation> LogSoftmaxPipeline::make_invocation(const Knobs &,
                                                                bool edge_shape) const {
    return std::make_unique<LsInvocation>(edge_shape ? kEdgeLength : problem().cols,
                                          edge_shape ? 1234 : 42);
}

}  // namespace amq::tune
