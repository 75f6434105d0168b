// Generator for bgemv_w<k_w>a<k_a>: see bgemv.h for the algorithm and schedule.
#include "bgemv.h"
#include "isa_knobs.h"

namespace amq::gen {

class BgemvGenerator : public Halide::Generator<BgemvGenerator> {
public:
    GeneratorParam<int> k_w{"k_w", 2, 1, 4};
    GeneratorParam<int> k_a{"k_a", 2, 1, 4};
    GeneratorParam<std::string> layout{"layout", "tiled"};
    GeneratorParam<int> tile{"tile", 8, 1, 64};
    GeneratorParam<int> unroll_words{"unroll_words", 1, 1, 16};
    GeneratorParam<int> parallel_tiles{"parallel_tiles", 0, 0, 1 << 20};
    GeneratorParam<std::string> isa_knobs{"isa_knobs", ""};  // per ISA variant: isa_knobs.h
    // Shape the autoschedulers plan for (estimates only).
    GeneratorParam<int> est_rows{"est_rows", 4096};
    GeneratorParam<int> est_cols{"est_cols", 1024};
    // A per-problem variant (schedules/manifest.json): rows and cols > 0 make
    // the extents of W, A and y constants of that shape; 0 = any shape.
    GeneratorParam<int> rows{"rows", 0, 0, 1 << 30};
    GeneratorParam<int> cols{"cols", 0, 0, 1 << 30};

    Input<Buffer<uint64_t, 4>> W{"W"};
    Input<Buffer<float, 3>> alpha{"alpha"};
    Input<Buffer<float, 2>> bias{"bias"};
    Input<Buffer<uint64_t, 2>> A{"A"};
    Input<Buffer<float, 1>> beta{"beta"};
    Input<int32_t> n{"n", 1, 1, 1 << 30};
    Input<bool> parallel{"parallel", false};
    Output<Buffer<float, 2>> y{"y"};

    void generate() {
        const Layout lay = parse_layout(layout);
        Halide::Expr words = A.dim(0).extent();
        BgemvFuncs f = bgemv_algorithm(W, alpha, bias, A, beta, n, words, k_w, k_a);
        y = f.y;

        constrain_bgemv_buffers(W, alpha, bias, A, beta, y, lay, tile, k_w, k_a);

        const int shape_rows = rows > 0 ? int(rows) : int(est_rows);
        const int shape_cols = cols > 0 ? int(cols) : int(est_cols);
        if (rows > 0 && cols > 0) {  // a per-problem variant: the shape as constant extents
            const int tiles = (shape_rows + tile - 1) / tile;
            A.dim(0).set_extent((shape_cols + 63) / 64);
            y.dim(1).set_extent(tiles);
            W.dim(3).set_extent(tiles);
        }
        set_bgemv_estimates(W, alpha, bias, A, beta, n, parallel, y, tile, k_w, k_a, shape_rows,
                            shape_cols, false);

        IsaKnobs isa(isa_knobs, get_target(), "bgemv");
        if (!auto_schedule) {
            BgemvKnobs k;
            k.layout = lay;
            k.tile = tile;
            k.unroll_words = isa.get("unroll_words", int(unroll_words));
            k.parallel_tiles = isa.get("parallel_tiles", int(parallel_tiles));
            isa.done();
            bgemv_schedule(f, k, k_w, k_a, parallel);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::BgemvGenerator, bgemv)
