// Batch tiles of the bgemm kernels, shared by the generator (generators/bgemm.h)
// and the runtime (which passes the tile of each call), so the two cannot
// disagree. Header only.
//
// bgemm counts the XOR-popcounts of a tile of batch items together, all in
// vector registers: k_w k_a accumulators per item.
#pragma once

#include <cstddef>

namespace amq {

// The largest batch tile of a bgemm kernel for k_w x k_a bits: as many items as
// `accumulators` vector accumulators hold, at least 1 and at most max_tile.
inline int bgemm_max_batch_tile(int accumulators, int max_tile, int k_w, int k_a) {
    const int t = accumulators / (k_w * k_a);
    return t < 1 ? 1 : (t > max_tile ? max_tile : t);
}

// The tile for a batch of B >= 1 items, 1..max_tile. The last tile is shifted
// inwards when the tile does not divide B, so ceil(B / s) s items are counted.
// A tile of s items costs about s + 0.5 item-products (the word loop's loads and
// overhead are shared; measured at 4096x1024 on the Zen 5 VM: per item 12.0 /
// 9.3 / 8.9 / 8.6 / 8.3 us for tiles of 1..5 at W2A2, 23.6 / 19.4 us for tiles
// of 1 / 2 at W3A3), so the tile minimizes ceil(B / s) (s + 0.5): B = 5 with
// max 4 gives tiles of 3 (one item counted twice) rather than 1 or 4.
inline int bgemm_batch_tile(size_t B, int max_tile) {
    int best = 1;
    double best_cost = 0;
    for (int s = 1; s <= max_tile && size_t(s) <= B; ++s) {
        const double cost = double((B + size_t(s) - 1) / size_t(s)) * (s + 0.5);
        if (s == 1 || cost < best_cost) best = s, best_cost = cost;
    }
    return best;
}

}  // namespace amq
