// lstm_cell and gru_cell as tunable pipelines: the algorithms and the schedule
// of generators/lstm_cell.h, gru_cell.h and cell_math.h with the buffer
// constraints of their generators, checked against ref::lstm_cell and
// ref::gru_cell (quantize/include/amq/reference_cell.h).
#include "cell_pipeline.h"

#include <cmath>
#include <limits>

#include "amq/reference_cell.h"
#include "gru_cell.h"
#include "lstm_cell.h"
#include "pipeline_data.h"

namespace amq::tune {
namespace {

// Edge shape: 77 hidden units (a multiple of no vector width), 3 items.
constexpr size_t kEdgeHidden = 77, kEdgeBatch = 3;

struct CellParams {
    Halide::ImageParam gx{Halide::Float(32), 2, "gx"};
    Halide::ImageParam gh{Halide::Float(32), 2, "gh"};
    Halide::ImageParam prev;  // c_prev (LSTM) or h_prev (GRU)
    explicit CellParams(bool lstm) : prev(Halide::Float(32), 2, lstm ? "c_prev" : "h_prev") {}
};

// The algorithm with the buffer constraints of <cell>_generator.cpp; the
// outputs (h, then c for the LSTM).
std::vector<Halide::Func> declare(CellParams &p, bool lstm, gen::LstmCellFuncs *lf,
                                  gen::GruCellFuncs *gf) {
    Halide::Expr H = p.prev.dim(0).extent();
    std::vector<Halide::Func> outs;
    if (lstm) {
        *lf = gen::lstm_cell_algorithm(p.gx, p.gh, p.prev, H);
        outs = {lf->h, lf->c};
    } else {
        *gf = gen::gru_cell_algorithm(p.gx, p.gh, p.prev, H);
        outs = {gf->h};
    }
    if (lstm)
        gen::constrain_cell_buffers(4, p.gx, p.gh, p.prev, outs[0].output_buffer(),
                                    outs[1].output_buffer());
    else
        gen::constrain_cell_buffers(3, p.gx, p.gh, p.prev, outs[0].output_buffer());
    return outs;
}

gen::CellKnobs to_knobs(const Knobs &k) {
    gen::CellKnobs c;
    c.vector = k.at("vector").get<int>();
    c.parallel_batch = k.at("parallel_batch").get<int>();
    return c;
}

// Gate pre-activations [B] x stride (the stride padded past G H, as a bgemv
// output's rows are), the previous state [B][H], the outputs [B][H] each.
class CellInvocation : public Invocation {
public:
    CellInvocation(bool lstm, size_t H, size_t B, uint64_t seed)
        : lstm_(lstm), H_(H), B_(B), G_(lstm ? 4 : 3) {
        const size_t stride = ceil_div(G_ * H, 16) * 16 + (G_ * H % 16 ? 0 : 16);
        auto aligned = [](const std::vector<float> &v) { return AlignedVector<float>(v.begin(), v.end()); };
        gxv_ = aligned(random_floats(B * stride, 2.0f, seed));
        ghv_ = aligned(random_floats(B * stride, 2.0f, seed + 1));
        prevv_ = aligned(random_floats(B * H, 1.0f, seed + 2));
        halide_dimension_t gd[2] = {{0, int(G_ * H), 1}, {0, int(B), int(stride)}};
        gx_ = Halide::Runtime::Buffer<float>(gxv_.data(), 2, gd);
        gh_ = Halide::Runtime::Buffer<float>(ghv_.data(), 2, gd);
        prev_ = Halide::Runtime::Buffer<float>(prevv_.data(), int(H), int(B));
        h_ = Halide::Runtime::Buffer<float>(int(H), int(B));
        if (lstm_) c_ = Halide::Runtime::Buffer<float>(int(H), int(B));
        // The references, per item (dense copies of its gates).
        h_ref_.resize(B * H);
        c_ref_.resize(B * H);
        for (size_t b = 0; b < B; ++b) {
            const float *gx = gxv_.data() + b * stride, *gh = ghv_.data() + b * stride;
            if (lstm_)
                ref::lstm_cell(gx, gh, prevv_.data() + b * H, H, h_ref_.data() + b * H,
                               c_ref_.data() + b * H);
            else
                ref::gru_cell(gx, gh, prevv_.data() + b * H, H, h_ref_.data() + b * H);
        }
    }

    const void *arg(const std::string &name) const override {
        if (name == "gx") return gx_.raw_buffer();
        if (name == "gh") return gh_.raw_buffer();
        if (name == (lstm_ ? "c_prev" : "h_prev")) return prev_.raw_buffer();
        return nullptr;
    }
    halide_buffer_t *output() override { return h_.raw_buffer(); }
    std::vector<halide_buffer_t *> outputs() override {
        if (lstm_) return {h_.raw_buffer(), c_.raw_buffer()};
        return {h_.raw_buffer()};
    }
    void poison_output() override {
        h_.fill(std::numeric_limits<float>::quiet_NaN());
        if (lstm_) c_.fill(std::numeric_limits<float>::quiet_NaN());
    }
    std::string check() const override {
        const size_t H = H_, n = B_ * H;
        const std::string where = std::to_string(H) + "x" + std::to_string(B_);
        auto what = [H](size_t i) {
            return "item " + std::to_string(i / H) + " unit " + std::to_string(i % H);
        };
        // Tolerance: the kernel works in f32, about 1e-7 of the magnitudes.
        std::string bad = compare_values(
            n, [&](size_t i) { return double(h_(int(i % H), int(i / H))); },
            [&](size_t i) { return h_ref_[i]; },
            [&](size_t i) { return 1e-6 * (1.0 + (lstm_ ? 0.0 : std::abs(prevv_[i]))); }, what,
            "h values", where);
        if (!bad.empty() || !lstm_) return bad;
        return compare_values(
            n, [&](size_t i) { return double(c_(int(i % H), int(i / H))); },
            [&](size_t i) { return c_ref_[i]; },
            [&](size_t i) { return 1e-6 * (1.0 + std::abs(prevv_[i])); }, what, "c values", where);
    }

private:
    bool lstm_;
    size_t H_, B_, G_;
    AlignedVector<float> gxv_, ghv_, prevv_;
    std::vector<double> h_ref_, c_ref_;
    Halide::Runtime::Buffer<float> gx_, gh_, prev_, h_, c_;
};

}  // namespace

CellPipeline::CellPipeline(const Problem &problem, const Halide::Target &target)
    : TunablePipeline(problem, builtin_space(problem.pipeline)),
      lstm_(problem.pipeline == "lstm_cell"),
      target_(target) {
    const std::string &name = problem.pipeline;
    if (problem.rows < 1 || problem.batch < 1 || problem.rows * problem.batch * 4 > (1u << 30))
        throw std::invalid_argument(name + ": shape " + problem.shape_str() +
                                    " (expected hidden size x batch, each >= 1)");
    if (problem.k_w != 0 || problem.k_a != 0 || problem.cols != 0 || problem.iters != 0 ||
        !problem.layout.empty())
        throw std::invalid_argument(name +
                                    ": a cell has a hidden size and a batch only (no bits, "
                                    "columns, iters or weight layout)");
    if (problem.threads < 1)
        throw std::invalid_argument(name + ": threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

std::string CellPipeline::prune(Knobs &k) const {
    const Problem &p = problem();
    const gen::CellKnobs c = to_knobs(k);
    const size_t lanes = size_t(target_.natural_vector_size<float>());
    if (size_t(c.vector) > ceil_div(p.rows, lanes) * lanes)
        return "vector " + std::to_string(c.vector) + " exceeds the " + std::to_string(p.rows) +
               " hidden unit(s)";
    if (c.parallel_batch > 0 && p.threads == 1)
        return "parallel_batch " + std::to_string(c.parallel_batch) +
               " with one thread: the parallel loop only adds overhead";
    if (c.parallel_batch > 0 && size_t(c.parallel_batch) >= p.batch)
        return "parallel_batch " + std::to_string(c.parallel_batch) + " covers all " +
               std::to_string(p.batch) + " item(s): one task, nothing runs in parallel";
    return "";
}

Halide::Pipeline CellPipeline::build(const Knobs &knobs) const {
    const gen::CellKnobs c = to_knobs(knobs);
    CellParams p(lstm_);
    gen::LstmCellFuncs lf;
    gen::GruCellFuncs gf;
    std::vector<Halide::Func> outs = declare(p, lstm_, &lf, &gf);
    if (lstm_)
        gen::lstm_cell_schedule(lf, c);
    else
        gen::gru_cell_schedule(gf, c);
    return Halide::Pipeline(outs);
}

Halide::Pipeline CellPipeline::build_unscheduled(const Knobs &) const {
    const Problem &pr = problem();
    CellParams p(lstm_);
    gen::LstmCellFuncs lf;
    gen::GruCellFuncs gf;
    std::vector<Halide::Func> outs = declare(p, lstm_, &lf, &gf);
    const int H = int(pr.rows), B = int(pr.batch);
    if (lstm_)
        gen::set_cell_estimates(4, H, B, p.gx, p.gh, p.prev, outs[0], outs[1]);
    else
        gen::set_cell_estimates(3, H, B, p.gx, p.gh, p.prev, outs[0]);
    return Halide::Pipeline(outs);
}

std::vector<Knobs> CellPipeline::autoscheduler_layouts() const {
    return {Knobs::object()};  // no data layout to choose
}

std::unique_ptr<Invocation> CellPipeline::make_invocation(const Knobs &, bool edge_shape) const {
    const Problem &p = problem();
    return std::make_unique<CellInvocation>(lstm_, edge_shape ? kEdgeHidden : p.rows,
                                            edge_shape ? kEdgeBatch : p.batch,
                                            edge_shape ? 1234 : 42);
}

}  // namespace amq::tune
