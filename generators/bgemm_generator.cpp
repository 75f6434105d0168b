// Generator for bgemm_w<k_w>a<k_a>: see bgemm.h for the algorithm and schedule.
#include "bgemm.h"
#include "isa_knobs.h"

namespace amq::gen {

class BgemmGenerator : public Halide::Generator<BgemmGenerator> {
public:
    GeneratorParam<int> k_w{"k_w", 2, 1, 4};
    GeneratorParam<int> k_a{"k_a", 2, 1, 4};
    GeneratorParam<std::string> layout{"layout", "tiled"};
    GeneratorParam<int> tile{"tile", 8, 1, 64};
    GeneratorParam<int> unroll_words{"unroll_words", 1, 1, 16};
    GeneratorParam<int> parallel_tiles{"parallel_tiles", 0, 0, 1 << 20};
    GeneratorParam<int> accumulators{"accumulators", 24, 1, 256};
    GeneratorParam<int> max_batch_tile{"max_batch_tile", 6, 1, 16};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_rows{"est_rows", 4096};
    GeneratorParam<int> est_cols{"est_cols", 1024};
    GeneratorParam<int> est_batch{"est_batch", 4};

    Input<Buffer<uint64_t, 4>> W{"W"};
    Input<Buffer<float, 3>> alpha{"alpha"};
    Input<Buffer<float, 2>> bias{"bias"};
    Input<Buffer<uint64_t, 3>> A{"A"};
    Input<Buffer<float, 2>> beta{"beta"};
    Input<int32_t> n{"n", 1, 1, 1 << 30};
    Input<bool> parallel{"parallel", false};
    // Items per batch tile, 1 .. amq::bgemm_max_batch_tile(accumulators,
    // max_batch_tile, k_w, k_a), at most the batch: amq::bgemm_batch_tile().
    Input<int32_t> batch_tile{"batch_tile", 1, 1, 64};
    Output<Buffer<float, 3>> y{"y"};

    void generate() {
        const Layout lay = parse_layout(layout);
        Halide::Expr words = A.dim(0).extent();
        BgemmFuncs f = bgemm_algorithm(W, alpha, bias, A, beta, n, words, k_w, k_a);
        y = f.y;

        constrain_bgemm_buffers(W, alpha, bias, A, beta, y, lay, tile, k_w, k_a);

        set_bgemm_estimates(
            W, alpha, bias, A, beta, n, parallel, batch_tile, y, tile, k_w, k_a, est_rows,
            est_cols, est_batch,
            bgemm_batch_tile(est_batch, bgemm_max_batch_tile(accumulators, max_batch_tile, k_w, k_a)),
            false);

        IsaKnobs isa(isa_knobs, get_target(), "bgemm");
        if (!auto_schedule) {
            BgemmKnobs k;
            k.layout = lay;
            k.tile = tile;
            k.unroll_words = isa.get("unroll_words", int(unroll_words));
            k.parallel_tiles = isa.get("parallel_tiles", int(parallel_tiles));
            isa.done();
            k.accumulators = accumulators;
            k.max_batch_tile = max_batch_tile;
            bgemm_schedule(f, k, k_w, k_a, batch_tile, parallel);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::BgemmGenerator, bgemm)
