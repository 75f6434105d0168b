// f32_gemv as a tunable pipeline: the algorithm and schedule of
// generators/f32_gemv.h with the buffer constraints of f32_gemv_generator.cpp,
// on the matrix packed in row panels (amq/float_panels.h, as amq::FloatMatrix
// packs it), checked against the product in double (ref::float_gemv).
#include "f32_gemv_pipeline.h"

#include <cmath>
#include <limits>

#include "f32_gemv.h"
#include "amq/float_panels.h"
#include "amq/reference.h"
#include "amq/spec.h"
#include "pipeline_data.h"

namespace amq::tune {
namespace {

// Edge shape: rows a multiple of no panel, columns of no vector width.
constexpr size_t kEdgeRows = 77, kEdgeCols = 130;

struct F32Params {
    Halide::ImageParam Mp{Halide::Float(32), 3, "Mp"};
    Halide::ImageParam x{Halide::Float(32), 1, "x"};
    Halide::ImageParam bias{Halide::Float(32), 1, "bias"};
    Halide::Param<bool> parallel{"parallel", false};
};

gen::F32GemvFuncs declare(F32Params &p, int panel) {
    gen::F32GemvFuncs f = gen::f32_gemv_algorithm(p.Mp, p.x, p.bias, p.Mp.dim(1).extent(), panel);
    gen::constrain_f32_gemv_buffers(p.Mp, p.x, p.bias, f.y.output_buffer(), panel);
    return f;
}

gen::F32GemvKnobs to_knobs(const Knobs &k) {
    gen::F32GemvKnobs g;
    g.panel = k.at("panel").get<int>();
    g.vector = k.at("vector").get<int>();
    g.panels = k.at("panels").get<int>();
    g.parallel_rows = k.at("parallel_rows").get<int>();
    return g;
}

class F32GemvInvocation : public Invocation {
public:
    F32GemvInvocation(size_t rows, size_t cols, size_t panel, bool parallel, uint64_t seed)
        : rows_(rows), cols_(cols), parallel_(parallel),
          m_(float_panels_size(rows, cols, panel)) {
        const std::vector<float> m = random_floats(rows * cols, 1.0f, seed);
        pack_float_panels(m.data(), rows, cols, panel, m_.data());
        const std::vector<float> x = random_floats(cols, 1.0f, seed + 1),
                                 b = random_floats(rows, 1.0f, seed + 2);
        xv_.assign(x.begin(), x.end());
        bv_.assign(b.begin(), b.end());
        halide_dimension_t d[3] = {{0, int(panel), 1},
                                   {0, int(cols), int(panel)},
                                   {0, int(float_panels(rows, panel)), int(panel * cols)}};
        M_ = Halide::Runtime::Buffer<float>(m_.data(), 3, d);
        x_ = Halide::Runtime::Buffer<float>(xv_.data(), int(cols));
        bias_ = Halide::Runtime::Buffer<float>(bv_.data(), int(rows));
        y_ = Halide::Runtime::Buffer<float>(int(rows));
        // The reference: the product in double.
        expect_ = ref::float_gemv(m.data(), rows, cols, x.data(), b.data(), &scale_);
    }

    const void *arg(const std::string &name) const override {
        if (name == "Mp") return M_.raw_buffer();
        if (name == "x") return x_.raw_buffer();
        if (name == "bias") return bias_.raw_buffer();
        if (name == "parallel") return &parallel_;
        return nullptr;
    }
    halide_buffer_t *output() override { return y_.raw_buffer(); }
    void poison_output() override { y_.fill(std::numeric_limits<float>::quiet_NaN()); }
    std::string check() const override {
        return compare_values(
            rows_, [&](size_t r) { return double(y_(int(r))); },
            [&](size_t r) { return expect_[r]; }, [&](size_t r) { return 1e-5 * scale_[r] + 1e-6; },
            [](size_t r) { return "row " + std::to_string(r); }, "rows",
            std::to_string(rows_) + "x" + std::to_string(cols_));
    }

private:
    size_t rows_, cols_;
    bool parallel_;
    AlignedVector<float> m_, xv_, bv_;
    std::vector<double> expect_, scale_;
    Halide::Runtime::Buffer<float> M_, x_, bias_, y_;
};

}  // namespace

F32GemvPipeline::F32GemvPipeline(const Problem &problem, const Halide::Target &target)
    : TunablePipeline(problem, builtin_space("f32_gemv")), target_(target) {
    if (problem.rows < 1 || problem.cols < 1 || problem.rows * problem.cols > (1u << 30))
        throw std::invalid_argument("f32_gemv: shape " + problem.shape_str() +
                                    " (expected rows and columns >= 1, at most 2^30 values)");
    if (problem.k_w != 0 || problem.k_a != 0)
        throw std::invalid_argument("f32_gemv: bits " + spec::bits_name(problem.k_w, problem.k_a) +
                                    " (the float product has no bits)");
    if (problem.batch != 1 || problem.iters != 0 || !problem.layout.empty())
        throw std::invalid_argument("f32_gemv: batch, iters and weight layout do not apply");
    if (problem.threads < 1)
        throw std::invalid_argument("f32_gemv: threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

std::string F32GemvPipeline::prune(Knobs &k) const {
    const Problem &p = problem();
    if (p.threads == 1) k["parallel_rows"] = hand_defaults("f32_gemv").at("parallel_rows");
    const gen::F32GemvKnobs g = to_knobs(k);
    if (g.panel % g.vector != 0)
        return "vector " + std::to_string(g.vector) + " does not divide panel " +
               std::to_string(g.panel);
    const size_t panels = float_panels(p.rows, size_t(g.panel));
    if (size_t(g.panels) > panels)
        return "panels " + std::to_string(g.panels) + " exceeds the " + std::to_string(panels) +
               " panel(s) of " + std::to_string(p.rows) + " rows";
    // The outputs of panels x panel rows live in vector registers, with x(c)'s
    // broadcast beside them.
    const int lanes = target_.natural_vector_size<float>();
    const int registers = target_.has_feature(Halide::Target::AVX512) ? 32 : 16;
    const int needed = int(ceil_div(size_t(g.panel), size_t(lanes))) * g.panels + 1;
    if (needed > registers)
        return "panels " + std::to_string(g.panels) + " x panel " + std::to_string(g.panel) +
               " outputs need " + std::to_string(needed) + " vector registers (the target has " +
               std::to_string(registers) + ")";
    if (p.threads > 1 && g.parallel_rows > 0 && size_t(g.parallel_rows) >= p.rows)
        return "parallel_rows " + std::to_string(g.parallel_rows) + " covers all " +
               std::to_string(p.rows) + " rows: one task, nothing runs in parallel";
    return "";
}

Halide::Pipeline F32GemvPipeline::build(const Knobs &knobs) const {
    const gen::F32GemvKnobs g = to_knobs(knobs);
    F32Params p;
    gen::F32GemvFuncs f = declare(p, g.panel);
    gen::f32_gemv_schedule(f, g, p.parallel);
    return Halide::Pipeline(f.y);
}

Halide::Pipeline F32GemvPipeline::build_unscheduled(const Knobs &layout) const {
    const Problem &pr = problem();
    F32Params p;
    const int panel = layout.at("panel").get<int>();
    gen::F32GemvFuncs f = declare(p, panel);
    gen::set_f32_gemv_estimates(p.Mp, p.x, p.bias, p.parallel, f.y, int(pr.rows), int(pr.cols),
                                panel, pr.threads > 1);
    return Halide::Pipeline(f.y);
}

std::vector<Knobs> F32GemvPipeline::autoscheduler_layouts() const {
    // The packed layout: rows per panel.
    return {{{"panel", 16}}, {{"panel", 32}}};
}

std::unique_ptr<Invocation> F32GemvPipeline::make_invocation(const Knobs &knobs,
                                                             bool edge_shape) const {
    const Problem &p = problem();
    return std::make_unique<F32GemvInvocation>(edge_shape ? kEdgeRows : p.rows,
                                               edge_shape ? kEdgeCols : p.cols,
                                               size_t(knobs.at("panel").get<int>()),
                                               parallel_flag(p.threads, p.rows * p.cols * 4,
                                                             edge_shape),
                                               edge_shape ? 1234 : 42);
}

}  // namespace amq::tune
