// quantize_act as a tunable pipeline: the algorithm and schedule of
// generators/quantize_act.h with the buffer constraints of
// quantize_act_generator.cpp, checked against ref::quantize_act (codes exactly,
// scales within 1e-5 of the largest, padding bits 0).
#include "quantize_act_pipeline.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "amq/reference.h"
#include "pipeline_data.h"
#include "quantize_act.h"

namespace amq::tune {
namespace {

// Edge shape: 3 words, the last one partial.
constexpr size_t kEdgeLength = 130;

struct QactParams {
    Halide::ImageParam x{Halide::Float(32), 1, "x"};
    Halide::Param<int32_t> n{"n", 1, 1, 1 << 30};
};

// The outputs (bytes, beta) with the buffer constraints of the generator.
// hand_schedule = false: the forms the autoschedulers can take (same results),
// as the generator builds them with auto_schedule=true.
gen::QuantizeActFuncs declare(QactParams &p, int k, int T, const gen::QuantizeActKnobs &kn,
                              bool hand_schedule = true) {
    gen::QuantizeActFuncs f = gen::quantize_act_algorithm(p.x, p.n, k, T, hand_schedule);
    gen::constrain_quantize_act_buffers(p.x, p.n, f.bytes.output_buffer(),
                                        f.beta.output_buffer(), k);
    return f;
}

gen::QuantizeActKnobs to_knobs(const Knobs &k) {
    gen::QuantizeActKnobs q;
    q.lanes = k.at("lanes").get<int>();
    q.pack_vector = k.at("pack_vector").get<int>();
    return q;
}

class QactInvocation : public Invocation {
public:
    QactInvocation(size_t n, int k, int T, uint64_t seed) : n_(n), k_(k), words_(ceil_div(n, 64)) {
        const std::vector<float> x = random_floats(n, 1.0f, seed);
        // The padding is read but must not count: fill it with a large value.
        xv_.assign(words_ * 64, 1e6f);
        std::copy(x.begin(), x.end(), xv_.begin());
        x_ = Halide::Runtime::Buffer<float>(xv_.data(), int(words_ * 64));
        bytes_ = Halide::Runtime::Buffer<uint8_t>(int(words_ * 8), k);
        beta_ = Halide::Runtime::Buffer<float>(k);
        n32_ = int32_t(n);
        ref_ = ref::quantize_act(x.data(), n, k, T);
    }

    const void *arg(const std::string &name) const override {
        if (name == "x") return x_.raw_buffer();
        if (name == "n") return &n32_;
        return nullptr;
    }
    halide_buffer_t *output() override { return beta_.raw_buffer(); }
    std::vector<halide_buffer_t *> outputs() override {
        return {bytes_.raw_buffer(), beta_.raw_buffer()};
    }
    void poison_output() override {
        bytes_.fill(0x5a);
        beta_.fill(std::numeric_limits<float>::quiet_NaN());
    }
    std::string check() const override {
        const std::string where = std::to_string(n_) + " a" + std::to_string(k_);
        double amax = 0;
        for (double a : ref_.alpha) amax = std::max(amax, std::abs(a));
        std::string bad = compare_values(
            size_t(k_), [&](size_t j) { return double(beta_(int(j))); },
            [&](size_t j) { return ref_.alpha[j]; }, [&](size_t) { return 1e-5 * amax + 1e-30; },
            [](size_t j) { return "scale " + std::to_string(j); }, "scales", where);
        if (!bad.empty()) return bad;
        // Codes: plane j's bits (1 = +1) against the reference's, padding bits 0.
        std::vector<uint64_t> plane(words_);
        std::vector<int8_t> codes(n_);
        for (int j = 0; j < k_; ++j) {
            std::memcpy(plane.data(), &bytes_(0, j), words_ * 8);
            if (n_ % 64 && (plane[words_ - 1] & ~ref::last_word_mask(n_)))
                return "plane " + std::to_string(j) + " has padding bits set at " + where;
            ref::unpack_row(plane.data(), n_, codes.data());
            bad = compare_values(
                n_, [&](size_t e) { return double(codes[e]); },
                [&](size_t e) { return double(ref_.codes[size_t(j) * n_ + e]); },
                [](size_t) { return 0.0; },
                [j](size_t e) {
                    return "plane " + std::to_string(j) + " element " + std::to_string(e);
                },
                "codes", where);
            if (!bad.empty()) return bad;
        }
        return "";
    }

private:
    size_t n_;
    int k_;
    size_t words_;
    int32_t n32_ = 0;
    AlignedVector<float> xv_;
    ref::Quantized ref_;
    Halide::Runtime::Buffer<float> x_, beta_;
    Halide::Runtime::Buffer<uint8_t> bytes_;
};

}  // namespace

QuantizeActPipeline::QuantizeActPipeline(const Problem &problem, const Halide::Target &target)
    : TunablePipeline(problem, builtin_space("quantize_act")), target_(target) {
    if (problem.cols < 1 || problem.cols > (1u << 30) || problem.rows != 1 || problem.batch != 1)
        throw std::invalid_argument("quantize_act: shape " + problem.shape_str() +
                                    " (expected one vector of 1..2^30 values)");
    if (problem.k_a < 1 || problem.k_a > 4 || problem.k_w != 0)
        throw std::invalid_argument("quantize_act: bits " + problem.bits_str() +
                                    " (expected activation bits 1..4 and no weight bits)");
    if (problem.iters < 0 || problem.iters > 3)
        throw std::invalid_argument("quantize_act: iters " + std::to_string(problem.iters) +
                                    " (expected 0..3, the cycles the runtime has kernels for)");
    if (!problem.layout.empty())
        throw std::invalid_argument("quantize_act: a weight layout does not apply");
    if (problem.threads < 1)
        throw std::invalid_argument("quantize_act: threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

std::string QuantizeActPipeline::prune(Knobs &k) const {
    const gen::QuantizeActKnobs q = to_knobs(k);
    if (const std::string e = gen::quantize_act_knobs_error(q); !e.empty()) return e;
    const size_t bytes = ceil_div(problem().cols, 64) * 8;
    if (q.pack_vector > 8 && size_t(q.pack_vector) > bytes)
        return "pack_vector " + std::to_string(q.pack_vector) + " exceeds the " +
               std::to_string(bytes) + " bytes of a plane";
    return "";
}

Halide::Pipeline QuantizeActPipeline::build(const Knobs &knobs) const {
    const gen::QuantizeActKnobs q = to_knobs(knobs);
    QactParams p;
    gen::QuantizeActFuncs f = declare(p, problem().k_a, problem().iters, q);
    gen::quantize_act_schedule(f, q);
    return Halide::Pipeline({f.bytes, f.beta});
}

Halide::Pipeline QuantizeActPipeline::build_unscheduled(const Knobs &layout) const {
    const Problem &pr = problem();
    gen::QuantizeActKnobs q;
    q.lanes = layout.at("lanes").get<int>();
    QactParams p;
    gen::QuantizeActFuncs f = declare(p, pr.k_a, pr.iters, q, false);
    gen::set_quantize_act_estimates(p.x, p.n, f.bytes, f.beta, pr.k_a, int(pr.cols));
    return Halide::Pipeline({f.bytes, f.beta});
}

std::vector<Knobs> QuantizeActPipeline::autoscheduler_layouts() const {
    // The algorithm's lanes of the masked sums (no data layout to choose).
    return {{{"lanes", 8}}};
}

std::unique_ptr<Invocation> QuantizeActPipeline::make_invocation(const Knobs &,
                                                                 bool edge_shape) const {
    const Problem &p = problem();
    return std::make_unique<QactInvocation>(edge_shape ? kEdgeLength : p.cols, p.k_a, p.iters,
                                            edge_shape ? 1234 : 42);
}

}  // namespace amq::tune
