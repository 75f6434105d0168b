// Generator for pack_bits in a given layout: see pack_bits.h.
#include "pack_bits.h"

namespace amq::gen {

class PackBitsGenerator : public Halide::Generator<PackBitsGenerator> {
public:
    GeneratorParam<std::string> layout{"layout", "plane_major"};
    GeneratorParam<int> tile{"tile", 1, 1, 64};
    GeneratorParam<int> vector{"vector", 8, 1, 64};
    GeneratorParam<int> est_rows{"est_rows", 4096};
    GeneratorParam<int> est_cols{"est_cols", 1024};

    Input<Buffer<float, 3>> src{"src"};
    Output<Buffer<uint64_t, 4>> W{"W"};

    void generate() {
        const Layout lay = parse_layout(layout);
        Halide::Expr cols = src.dim(0).extent(), rows = src.dim(1).extent();
        PackBitsFuncs f = pack_bits_algorithm(src, cols, rows, tile);
        W = f.W;

        src.dim(0).set_min(0).dim(1).set_min(0).dim(2).set_min(0);
        constrain_weight_layout(W, lay, tile, src.dim(2).extent());
        W.dim(2).set_extent((cols + 63) / 64);
        W.dim(3).set_extent((rows + tile - 1) / tile);

        const int tiles = (int(est_rows) + tile - 1) / tile;
        src.set_estimates({{0, est_cols}, {0, est_rows}, {0, 2}});
        W.set_estimates({{0, tile}, {0, 2}, {0, (int(est_cols) + 63) / 64}, {0, tiles}});

        if (!auto_schedule) {
            PackBitsKnobs k;
            k.vector = vector;
            pack_bits_schedule(f, lay, tile, k);
        }
    }
};

}  // namespace amq::gen

HALIDE_REGISTER_GENERATOR(amq::gen::PackBitsGenerator, pack_bits)
