// bgemm as a tunable pipeline: the algorithm and schedule of generators/bgemm.h
// with the buffer constraints of bgemm_generator.cpp, the batch tile chosen as
// the runtime chooses it (amq/batch_tile.h), and ref::binary_gemv per item as
// the reference.
#include "bgemm_pipeline.h"

#include <cmath>
#include <limits>

#include "amq/batch_tile.h"
#include "amq/reference.h"
#include "bgemm.h"
#include "pipeline_data.h"

namespace amq::tune {
namespace {

// Edge shape: rows and columns a multiple of no tile and no word count (3
// words, the last one partial); the batch is 2 x the tuned batch tile + 1, so
// that the last tile is shifted inwards.
constexpr size_t kEdgeRows = 77, kEdgeCols = 130;

struct BgemmParams {
    Halide::ImageParam W{Halide::UInt(64), 4, "W"};
    Halide::ImageParam alpha{Halide::Float(32), 3, "alpha"};
    Halide::ImageParam bias{Halide::Float(32), 2, "bias"};
    Halide::ImageParam A{Halide::UInt(64), 3, "A"};
    Halide::ImageParam beta{Halide::Float(32), 2, "beta"};
    Halide::Param<int32_t> n{"n", 1, 1, 1 << 30};
    Halide::Param<bool> parallel{"parallel", false};
    Halide::Param<int32_t> batch_tile{"batch_tile", 1, 1, 64};
};

// The algorithm with the buffer constraints of the generator (gen::constrain_bgemm_buffers).
gen::BgemmFuncs declare(BgemmParams &p, gen::Layout layout, int tile, int k_w, int k_a) {
    Halide::Expr words = p.A.dim(0).extent();
    gen::BgemmFuncs f =
        gen::bgemm_algorithm(p.W, p.alpha, p.bias, p.A, p.beta, p.n, words, k_w, k_a);
    gen::constrain_bgemm_buffers(p.W, p.alpha, p.bias, p.A, p.beta, f.y.output_buffer(), layout,
                                 tile, k_w, k_a);
    return f;
}

gen::BgemmKnobs to_knobs(const Problem &p, const Knobs &k) {
    gen::BgemmKnobs b;
    b.layout = gen::parse_layout(p.layout);
    b.tile = p.tile;
    b.unroll_words = k.at("unroll_words").get<int>();
    b.parallel_tiles = k.at("parallel_tiles").get<int>();
    b.accumulators = k.at("accumulators").get<int>();
    b.max_batch_tile = k.at("max_batch_tile").get<int>();
    return b;
}

class BgemmInvocation : public Invocation {
public:
    BgemmInvocation(BinaryData data, const std::string &layout, int tile, int threads,
                    bool edge_shape, int batch_tile)
        : d_(std::move(data)),
          w_(d_, layout, tile),
          tile_(tile),
          parallel_(parallel_flag(threads, w_.bytes() * d_.batch, edge_shape)),
          batch_tile_(batch_tile) {
        const int B = int(d_.batch);
        A_ = Halide::Runtime::Buffer<uint64_t>(int(d_.words), d_.k_a, B);
        std::copy(d_.A.begin(), d_.A.end(), A_.data());
        beta_ = Halide::Runtime::Buffer<float>(d_.k_a, B);
        std::copy(d_.beta.begin(), d_.beta.end(), beta_.data());
        y_ = Halide::Runtime::Buffer<float>(tile, int(w_.tiles()), B);
        n_ = int32_t(d_.cols);
    }

    const void *arg(const std::string &name) const override {
        if (name == "W") return w_.W.raw_buffer();
        if (name == "alpha") return w_.alpha.raw_buffer();
        if (name == "bias") return w_.bias.raw_buffer();
        if (name == "A") return A_.raw_buffer();
        if (name == "beta") return beta_.raw_buffer();
        if (name == "n") return &n_;
        if (name == "parallel") return &parallel_;
        if (name == "batch_tile") return &batch_tile_;
        return nullptr;
    }
    halide_buffer_t *output() override { return y_.raw_buffer(); }
    void poison_output() override { y_.fill(std::numeric_limits<float>::quiet_NaN()); }
    std::string check() const override {
        const size_t t = size_t(tile_), R = d_.rows;
        return compare_values(
            d_.batch * R,
            [&](size_t i) { return double(y_(int(i % R % t), int(i % R / t), int(i / R))); },
            [&](size_t i) { return d_.expect[i]; },
            [&](size_t i) { return 1e-5 * d_.scale[i] + 1e-6; },
            [R](size_t i) {
                return "item " + std::to_string(i / R) + " row " + std::to_string(i % R);
            },
            "outputs",
            std::to_string(R) + "x" + std::to_string(d_.cols) + "x" + std::to_string(d_.batch) +
                " (batch tile " + std::to_string(batch_tile_) + ")");
    }

private:
    BinaryData d_;
    PackedWeights w_;
    int tile_;
    bool parallel_;
    int32_t batch_tile_, n_ = 0;
    Halide::Runtime::Buffer<uint64_t> A_;
    Halide::Runtime::Buffer<float> beta_, y_;
};

}  // namespace

BgemmPipeline::BgemmPipeline(const Problem &problem, const Halide::Target &target)
    : TunablePipeline(problem, builtin_space("bgemm")), target_(target) {
    if (problem.rows < 1 || problem.cols < 1 || problem.rows > (1u << 30) ||
        problem.cols > (1u << 30))
        throw std::invalid_argument("bgemm: shape " + problem.shape_str() +
                                    " (expected rows and columns in 1..2^30)");
    if (problem.batch < 2 || problem.batch > (1u << 20))
        throw std::invalid_argument("bgemm: batch " + std::to_string(problem.batch) +
                                    " (expected 2..2^20; one vector runs bgemv: tune bgemv)");
    if (problem.k_w < 1 || problem.k_w > 4 || problem.k_a < 1 || problem.k_a > 4)
        throw std::invalid_argument("bgemm: bits " + problem.bits_str() +
                                    " (expected weight and activation bits in 1..4)");
    if (problem.layout.empty())
        throw std::invalid_argument(
            "bgemm: no weight layout (bgemm reads bgemv's layout and tile: give both)");
    gen::parse_layout(problem.layout);  // throws std::invalid_argument naming it
    if (problem.tile < 1 || problem.tile > 64)
        throw std::invalid_argument("bgemm: tile " + std::to_string(problem.tile) +
                                    " (expected 1..64)");
    if (problem.iters != 0) throw std::invalid_argument("bgemm: iters does not apply");
    if (problem.threads < 1)
        throw std::invalid_argument("bgemm: threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

int BgemmPipeline::batch_tile(const Knobs &k, size_t batch) const {
    const Problem &p = problem();
    return bgemm_batch_tile(batch,
                            bgemm_max_batch_tile(k.at("accumulators").get<int>(),
                                                 k.at("max_batch_tile").get<int>(), p.k_w, p.k_a));
}

std::string BgemmPipeline::prune(Knobs &k) const {
    const Problem &p = problem();
    const Knobs defaults = hand_defaults("bgemm");
    if (p.threads == 1) k["parallel_tiles"] = defaults.at("parallel_tiles");
    // One candidate per batch tile: the first of these pairs that gives it.
    const int bt = batch_tile(k, p.batch);
    std::vector<std::pair<nlohmann::json, nlohmann::json>> order = {
        {defaults.at("accumulators"), defaults.at("max_batch_tile")}};
    const KnobDef *acc = space().find("accumulators"), *mbt = space().find("max_batch_tile");
    for (const auto &m : mbt->values) order.push_back({defaults.at("accumulators"), m});
    for (const auto &a : acc->values) order.push_back({a, defaults.at("max_batch_tile")});
    for (const auto &a : acc->values)
        for (const auto &m : mbt->values) order.push_back({a, m});
    for (const auto &[a, m] : order) {
        Knobs c = k;
        c["accumulators"] = a;
        c["max_batch_tile"] = m;
        if (batch_tile(c, p.batch) == bt) {
            k = c;
            break;
        }
    }
    const gen::BgemmKnobs b = to_knobs(p, k);
    const size_t words = ref::words_for(p.cols);
    if (b.unroll_words > 1 && size_t(b.unroll_words) > words)
        return "unroll_words " + std::to_string(b.unroll_words) + " exceeds the " +
               std::to_string(words) + " word(s) of a row";
    const int lanes = target_.natural_vector_size<uint64_t>();
    const int registers = target_.has_feature(Halide::Target::AVX512) ? 32 : 16;
    const int needed = int(ceil_div(size_t(b.tile) * p.k_w * p.k_a * bt, size_t(lanes)));
    if (needed > registers)
        return "batch tile " + std::to_string(bt) + " x tile " + std::to_string(b.tile) + " x " +
               std::to_string(p.k_w) + " x " + std::to_string(p.k_a) + " counters need " +
               std::to_string(needed) + " vector registers (the target has " +
               std::to_string(registers) + ")";
    if (p.threads > 1) {
        const size_t tiles = ceil_div(p.rows, size_t(b.tile));
        if (size_t(b.parallel_tiles) >= tiles)
            return "parallel_tiles " + std::to_string(b.parallel_tiles) + " covers all " +
                   std::to_string(tiles) + " row tiles: one task, nothing runs in parallel";
    }
    return "";
}

Halide::Pipeline BgemmPipeline::build(const Knobs &knobs) const {
    const Problem &pr = problem();
    const gen::BgemmKnobs b = to_knobs(pr, knobs);
    BgemmParams p;
    gen::BgemmFuncs f = declare(p, b.layout, b.tile, pr.k_w, pr.k_a);
    gen::bgemm_schedule(f, b, pr.k_w, pr.k_a, p.batch_tile, p.parallel);
    return Halide::Pipeline(f.y);
}

Halide::Pipeline BgemmPipeline::build_unscheduled(const Knobs &) const {
    const Problem &pr = problem();
    const int tile = pr.tile;
    BgemmParams p;
    gen::BgemmFuncs f = declare(p, gen::parse_layout(pr.layout), tile, pr.k_w, pr.k_a);
    // The generator's estimates, at the real shape.
    gen::set_bgemm_estimates(p.W, p.alpha, p.bias, p.A, p.beta, p.n, p.parallel, p.batch_tile,
                             f.y, tile, pr.k_w, pr.k_a, int(pr.rows), int(pr.cols),
                             int(pr.batch), batch_tile(hand_defaults("bgemm"), pr.batch),
                             pr.threads > 1);
    return Halide::Pipeline(f.y);
}

std::vector<Knobs> BgemmPipeline::autoscheduler_layouts() const {
    // The weights' layout is the problem's (bgemv's), not a choice.
    return {{{"layout", problem().layout}, {"tile", problem().tile}}};
}

std::unique_ptr<Invocation> BgemmPipeline::make_invocation(const Knobs &knobs,
                                                           bool edge_shape) const {
    const Problem &p = problem();
    // An autoscheduler's candidate carries the layout only: its kernel ignores
    // batch_tile, give it the defaults'.
    const Knobs &k = knobs.contains("accumulators") ? knobs : hand_defaults("bgemm");
    const int bt = batch_tile(k, p.batch);
    const size_t batch = edge_shape ? size_t(2 * bt + 1) : p.batch;
    return std::make_unique<BgemmInvocation>(
        make_binary_data(edge_shape ? kEdgeRows : p.rows, edge_shape ? kEdgeCols : p.cols, p.k_w,
                         p.k_a, batch, edge_shape ? 1234 : 42),
        p.layout, p.tile, p.threads, edge_shape, bt);
}

}  // namespace amq::tune
