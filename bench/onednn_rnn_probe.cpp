// Prints the oneDNN RNN baseline's microseconds per time step (median over
// rounds) for LSTM and GRU (linear-before-reset), H in {256, 512, 1024}, f32 and
// int8, batch 1, T = 100, input_size = H, one layer.
//   amq_onednn_probe [--threads N] [--rounds R] [--iters K]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "onednn_rnn.h"

int main(int argc, char **argv) {
    int threads = 1, rounds = 7, iters = 3;
    for (int i = 1; i < argc; ++i) {
        auto value = [&](const char *flag) {
            if (i + 1 >= argc || std::atoi(argv[i + 1]) <= 0) {
                std::fprintf(stderr, "amq_onednn_probe: %s needs a positive integer\n", flag);
                std::exit(2);
            }
            return std::atoi(argv[++i]);
        };
        if (!std::strcmp(argv[i], "--threads")) {
            threads = value("--threads");
        } else if (!std::strcmp(argv[i], "--rounds")) {
            rounds = value("--rounds");
        } else if (!std::strcmp(argv[i], "--iters")) {
            iters = value("--iters");
        } else {
            std::fprintf(stderr,
                         "amq_onednn_probe: unknown argument '%s'\n"
                         "usage: amq_onednn_probe [--threads N] [--rounds R] [--iters K]\n",
                         argv[i]);
            return 2;
        }
    }
    std::printf(
        "oneDNN RNN baseline: batch 1, T 100, 1 layer, input = hidden, threads %d, "
        "median of %d rounds x %d runs\n",
        threads, rounds, iters);
    std::printf("%-5s %5s %-5s %12s  %s\n", "arch", "H", "type", "us/step", "implementation");
    for (const char *arch : {"lstm", "gru"})
        for (int H : {256, 512, 1024})
            for (bool int8 : {false, true}) {
                amq::bench::OnednnRnnConfig cfg;
                cfg.arch = arch;
                cfg.input_size = cfg.hidden_size = H;
                cfg.int8 = int8;
                cfg.threads = threads;
                const auto r = amq::bench::measure_onednn_rnn(cfg, rounds, iters);
                if (r.ok)
                    std::printf("%-5s %5d %-5s %12.2f  %s\n", arch, H, int8 ? "int8" : "f32",
                                r.us_per_step, r.impl.c_str());
                else
                    std::printf("%-5s %5d %-5s %12s  unsupported: %s\n", arch, H,
                                int8 ? "int8" : "f32", "-", r.reason.c_str());
                std::fflush(stdout);
            }
    return 0;
}
