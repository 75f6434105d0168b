// Google Benchmark suite for the LSTM/GRU runner against oneDNN: one random
// layer (PyTorch init; input = hidden) over a sequence of kSteps steps, batch 1
// (and 8 at H = 1024: BM_amq_rnn/<arch>/H:1024/B:8/W2A2),
// one thread. Run with --benchmark_format=json.
//
//   BM_amq_rnn/<arch>/H:<H>/W<w>A<a>   amq::Session over the quantized model (run())
//   BM_amq_rnn_step/<arch>/H:<H>/W2A2  the same as kSteps calls of step()
//   BM_onednn_f32/<arch>/H:<H>         oneDNN lstm_forward / lbr_gru_forward, f32
//   BM_onednn_int8/<arch>/H:<H>        LSTM: the same in int8; GRU: oneDNN's plain
//                                      gru_forward in int8 (oneDNN 2.6.3 has no
//                                      int8 LBR GRU), a speed baseline of the
//                                      same size; the label names the cell
//
// One iteration is one sequence of kSteps steps from zero state. Counters:
// us_per_step (wall time / steps) and steps_per_s. The models and the loop are
// those of `amq bench rnn` (rnn_measure.h).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "amq/kernels.h"
#include "amq/timing.h"
#include "rnn_measure.h"

namespace {

using amq::bench::RnnBenchConfig;

constexpr int kSteps = 100;
constexpr int kThreads = 1;

RnnBenchConfig config(amq::Arch arch, int hidden, amq::spec::Bits bits, int batch = 1) {
    RnnBenchConfig c;
    c.batch = batch;
    c.arch = arch;
    c.hidden_size = size_t(hidden);
    c.bits = bits;
    c.threads = kThreads;
    c.steps = kSteps;
    return c;
}

// Times `run` (one sequence) in the benchmark loop and sets the counters.
template <typename Run>
void time_sequences(benchmark::State &st, Run &&run) {
    run();  // warm-up
    const double t0 = amq::timing::now_us();
    for (auto _ : st) run();
    const double us = amq::timing::now_us() - t0;
    const double steps = double(st.iterations()) * kSteps;
    st.counters["us_per_step"] = benchmark::Counter(steps > 0 ? us / steps : 0);
    st.counters["steps_per_s"] =
        benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}

// by_step: the sequence as kSteps calls of Session::step (streaming input)
// instead of one Session::run.
void BM_amq_rnn(benchmark::State &st, amq::Arch arch, int hidden, amq::spec::Bits bits,
                int batch, bool by_step) {
    // Quantizing takes longer than a repetition at H = 1024: keep the runner of
    // the benchmark being repeated.
    static std::string cached_name;
    static std::unique_ptr<amq::bench::AmqRnnRunner> cached;
    const std::string name = std::string(amq::arch_name(arch)) + "/" + std::to_string(hidden) +
                             "/" + std::to_string(bits.w) + "x" + std::to_string(bits.a) + "/" +
                             std::to_string(batch) + (by_step ? "/step" : "");
    if (name != cached_name) {
        cached.reset();
        amq::bench::RnnCandidates c =
            amq::bench::make_rnn_candidates(config(arch, hidden, bits, batch), false, false);
        cached = std::move(by_step ? c.amq_step : c.amq);
        cached_name = name;
    }
    amq::set_num_threads(kThreads);
    time_sequences(st, [&] { cached->run(); });
    st.counters["model_bytes"] = double(cached->model().weight_bytes());
    st.SetLabel(amq::isa_name(amq::active_isa()));
}

void BM_onednn(benchmark::State &st, amq::Arch arch, int hidden, bool int8) {
    const RnnBenchConfig cfg = config(arch, hidden, {2, 2});
    amq::bench::OnednnRnn rnn(amq::bench::onednn_config(cfg, int8),
                              amq::bench::random_rnn_weights(cfg));
    if (!rnn.ok()) {
        st.SkipWithError(rnn.reason().c_str());
        return;
    }
    rnn.set_input(amq::bench::random_rnn_input(cfg));
    time_sequences(st, [&] { rnn.run(); });
    st.SetLabel(int8 ? amq::bench::onednn_int8_cell(arch) + ": " + rnn.impl_info()
                     : rnn.impl_info());
}

void register_all() {
    const amq::Arch archs[] = {amq::Arch::lstm, amq::Arch::gru};
    const int hiddens[] = {64, 128, 256, 512, 1024};
    const amq::spec::Bits bits_list[] = {{2, 2}, {2, 3}, {3, 3}, {4, 4}};
    auto common = [](benchmark::internal::Benchmark *b) {
        b->UseRealTime()->Unit(benchmark::kMicrosecond);
    };
    for (amq::Arch arch : archs)
        for (int h : hiddens) {
            const std::string shape = std::string(amq::arch_name(arch)) + "/H:" + std::to_string(h);
            for (amq::spec::Bits bits : bits_list)
                common(benchmark::RegisterBenchmark(
                    ("BM_amq_rnn/" + shape + "/W" + std::to_string(bits.w) + "A" +
                     std::to_string(bits.a))
                        .c_str(),
                    BM_amq_rnn, arch, h, bits, 1, false));
            common(benchmark::RegisterBenchmark(("BM_amq_rnn_step/" + shape + "/W2A2").c_str(),
                                                BM_amq_rnn, arch, h, amq::spec::Bits{2, 2}, 1,
                                                true));
            // A batch of 8 sequences at once (us_per_step: per step of all 8).
            common(benchmark::RegisterBenchmark(("BM_amq_rnn/" + shape + "/B:8/W2A2").c_str(),
                                                BM_amq_rnn, arch, h, amq::spec::Bits{2, 2}, 8,
                                                false));
            common(benchmark::RegisterBenchmark(("BM_onednn_f32/" + shape).c_str(), BM_onednn, arch,
                                                h, false));
            common(benchmark::RegisterBenchmark(("BM_onednn_int8/" + shape).c_str(), BM_onednn,
                                                arch, h, true));
        }
}

}  // namespace

int main(int argc, char **argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
