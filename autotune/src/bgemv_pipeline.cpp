// bgemv as a tunable pipeline: the algorithm and schedule of generators/bgemv.h,
// the buffer constraints of generators/bgemv_generator.cpp, the pruning rules of
// its knob space, and ref::binary_gemv as the reference.
#include "bgemv_pipeline.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>

#include "amq/reference.h"
#include "amq/weight_layout.h"
#include "bgemv.h"
#include "pipeline_data.h"

namespace amq::tune {
namespace {

using gen::Layout;

// Small shape for the second check of every candidate: rows and columns that
// are multiples of no tile and no word count (3 words, the last one partial).
constexpr size_t kEdgeRows = 77, kEdgeCols = 130;

// The inputs of the pipeline, named as in the generator (the JIT entry point's
// arguments are bound by these names).
struct BgemvParams {
    Halide::ImageParam W{Halide::UInt(64), 4, "W"};
    Halide::ImageParam alpha{Halide::Float(32), 3, "alpha"};
    Halide::ImageParam bias{Halide::Float(32), 2, "bias"};
    Halide::ImageParam A{Halide::UInt(64), 2, "A"};
    Halide::ImageParam beta{Halide::Float(32), 1, "beta"};
    Halide::Param<int32_t> n{"n", 1, 1, 1 << 30};
    Halide::Param<bool> parallel{"parallel", false};
};

// The algorithm with the buffer constraints of the generator (gen::constrain_bgemv_buffers).
gen::BgemvFuncs declare(BgemvParams &p, Layout layout, int tile, int k_w, int k_a) {
    Halide::Expr words = p.A.dim(0).extent();
    gen::BgemvFuncs f =
        gen::bgemv_algorithm(p.W, p.alpha, p.bias, p.A, p.beta, p.n, words, k_w, k_a);
    gen::constrain_bgemv_buffers(p.W, p.alpha, p.bias, p.A, p.beta, f.y.output_buffer(), layout,
                                 tile, k_w, k_a);
    return f;
}

gen::BgemvKnobs to_bgemv_knobs(const Knobs &k) {
    gen::BgemvKnobs b;
    b.layout = gen::parse_layout(k.at("layout").get<std::string>());
    b.tile = k.at("tile").get<int>();
    b.unroll_words = k.at("unroll_words").get<int>();
    b.parallel_tiles = k.at("parallel_tiles").get<int>();
    return b;
}

// Random problem data (pipeline_data.h) repacked for a kernel with `layout`
// and `tile`, as the runtime does, and the kernel's output buffer.
class BgemvInvocation : public Invocation {
public:
    BgemvInvocation(BinaryData data, const std::string &layout, int tile, int threads,
                    bool edge_shape)
        : d_(std::move(data)),
          w_(d_, layout, tile),
          tile_(tile),
          parallel_(parallel_flag(threads, w_.bytes(), edge_shape)) {
        // Halide allocates 128-byte aligned.
        A_ = Halide::Runtime::Buffer<uint64_t>(int(d_.words), d_.k_a);
        std::copy(d_.A.begin(), d_.A.end(), A_.data());
        beta_ = Halide::Runtime::Buffer<float>(d_.k_a);
        std::copy(d_.beta.begin(), d_.beta.end(), beta_.data());
        y_ = Halide::Runtime::Buffer<float>(tile, int(w_.tiles()));
        n_ = int32_t(d_.cols);
        if (d_.rows % size_t(tile)) rows_out_.resize(d_.rows);
    }

    // As amq::bgemv: rows that end inside a tile are copied out of the padded
    // output (a tile that divides the rows needs no copy).
    void finish() override {
        if (!rows_out_.empty())
            std::memcpy(rows_out_.data(), y_.data(), rows_out_.size() * sizeof(float));
    }

    const void *arg(const std::string &name) const override {
        if (name == "W") return w_.W.raw_buffer();
        if (name == "alpha") return w_.alpha.raw_buffer();
        if (name == "bias") return w_.bias.raw_buffer();
        if (name == "A") return A_.raw_buffer();
        if (name == "beta") return beta_.raw_buffer();
        if (name == "n") return &n_;
        if (name == "parallel") return &parallel_;
        return nullptr;
    }

    halide_buffer_t *output() override { return y_.raw_buffer(); }

    void poison_output() override { y_.fill(std::numeric_limits<float>::quiet_NaN()); }

    std::string check() const override {
        const size_t t = size_t(tile_);
        return compare_values(
            d_.rows, [&](size_t row) { return double(y_(int(row % t), int(row / t))); },
            [&](size_t row) { return d_.expect[row]; },
            [&](size_t row) { return 1e-5 * d_.scale[row] + 1e-6; },
            [](size_t row) { return "row " + std::to_string(row); }, "rows",
            std::to_string(d_.rows) + "x" + std::to_string(d_.cols));
    }

private:
    BinaryData d_;
    PackedWeights w_;
    int tile_;
    bool parallel_;
    int32_t n_ = 0;
    Halide::Runtime::Buffer<uint64_t> A_;
    Halide::Runtime::Buffer<float> beta_, y_;
    std::vector<float> rows_out_;
};

}  // namespace

BgemvPipeline::BgemvPipeline(const Problem &problem, const Halide::Target &target)
    : TunablePipeline(problem, builtin_space("bgemv")), target_(target) {
    if (problem.rows < 1 || problem.cols < 1 || problem.rows > (1u << 30) ||
        problem.cols > (1u << 30))
        throw std::invalid_argument("bgemv: shape " + problem.shape_str() +
                                    " (expected rows and columns in 1..2^30)");
    if (problem.k_w < 1 || problem.k_w > 4 || problem.k_a < 1 || problem.k_a > 4)
        throw std::invalid_argument("bgemv: bits " + problem.bits_str() +
                                    " (expected weight and activation bits in 1..4)");
    if (problem.batch != 1 || problem.iters != 0 || !problem.layout.empty())
        throw std::invalid_argument(
            "bgemv: batch " + std::to_string(problem.batch) +
            " (bgemv takes one vector: a batch is bgemm; iters and weight layout do not apply)");
    if (problem.threads < 1)
        throw std::invalid_argument("bgemv: threads = " + std::to_string(problem.threads) +
                                    " (expected at least 1)");
}

std::string BgemvPipeline::prune(Knobs &k) const {
    const Problem &p = problem();
    // With one thread the serial variant runs: the task size cannot matter.
    if (p.threads == 1) k["parallel_tiles"] = hand_defaults("bgemv").at("parallel_tiles");
    const gen::BgemvKnobs b = to_bgemv_knobs(k);
    const size_t words = ref::words_for(p.cols);
    if (b.unroll_words > 1 && size_t(b.unroll_words) > words)
        return "unroll_words " + std::to_string(b.unroll_words) + " exceeds the " +
               std::to_string(words) + " word(s) of a row";
    if (size_t(b.tile) > ceil_div(p.rows, 4) * 4)
        return "tile " + std::to_string(b.tile) + " exceeds the " + std::to_string(p.rows) +
               " row(s)";
    // The tile x k_w x k_a u64 counters live in vector registers.
    const int lanes = target_.natural_vector_size<uint64_t>();
    const int registers = target_.has_feature(Halide::Target::AVX512) ? 32 : 16;
    const int needed = int(ceil_div(size_t(b.tile) * p.k_w * p.k_a, size_t(lanes)));
    if (needed > registers)
        return "tile " + std::to_string(b.tile) + " x " + std::to_string(p.k_w) + " x " +
               std::to_string(p.k_a) + " counters need " + std::to_string(needed) +
               " vector registers (the target has " + std::to_string(registers) + ")";
    if (p.threads > 1) {
        const size_t tiles = ceil_div(p.rows, size_t(b.tile));
        if (size_t(b.parallel_tiles) >= tiles)
            return "parallel_tiles " + std::to_string(b.parallel_tiles) + " covers all " +
                   std::to_string(tiles) + " row tiles: one task, nothing runs in parallel";
    }
    return "";
}

Halide::Pipeline BgemvPipeline::build(const Knobs &knobs) const {
    const gen::BgemvKnobs b = to_bgemv_knobs(knobs);
    BgemvParams p;
    gen::BgemvFuncs f = declare(p, b.layout, b.tile, problem().k_w, problem().k_a);
    gen::bgemv_schedule(f, b, problem().k_w, problem().k_a, p.parallel);
    return Halide::Pipeline(f.y);
}

Halide::Pipeline BgemvPipeline::build_unscheduled(const Knobs &layout) const {
    const Problem &pr = problem();
    const Layout lay = gen::parse_layout(layout.at("layout").get<std::string>());
    const int tile = layout.at("tile").get<int>();
    BgemvParams p;
    gen::BgemvFuncs f = declare(p, lay, tile, pr.k_w, pr.k_a);
    // The generator's estimates, at the real shape.
    gen::set_bgemv_estimates(p.W, p.alpha, p.bias, p.A, p.beta, p.n, p.parallel, f.y, tile,
                             pr.k_w, pr.k_a, int(pr.rows), int(pr.cols), pr.threads > 1);
    return Halide::Pipeline(f.y);
}

std::vector<Knobs> BgemvPipeline::autoscheduler_layouts() const {
    // The model file's layout with one row per tile (what the autoschedulers
    // did best on), and the layouts of the hand schedule.
    return {{{"layout", "plane_major"}, {"tile", 1}},
            {{"layout", "plane_major"}, {"tile", 8}},
            {{"layout", "tiled"}, {"tile", 8}},
            {{"layout", "interleaved"}, {"tile", 1}}};
}

std::unique_ptr<Invocation> BgemvPipeline::make_invocation(const Knobs &knobs,
                                                           bool edge_shape) const {
    const Problem &p = problem();
    const size_t rows = edge_shape ? kEdgeRows : p.rows, cols = edge_shape ? kEdgeCols : p.cols;
    return std::make_unique<BgemvInvocation>(
        make_binary_data(rows, cols, p.k_w, p.k_a, 1, edge_shape ? 1234 : 42),
        knobs.at("layout").get<std::string>(), knobs.at("tile").get<int>(), p.threads, edge_shape);
}

}  // namespace amq::tune
