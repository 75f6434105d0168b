// The LSTM/GRU runner (amq/rnn.h, amq/amq.h): the float path against PyTorch's
// nn.LSTM / nn.GRU outputs (files written by python/export_torch.py --io, see
// tests/CMakeLists.txt), the quantized paths against the scalar reference runner
// (amq/reference_rnn.h), error against float falling as bits rise, many sessions
// in parallel threads, the C API and bad input.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <thread>

#include "amq/amq.h"
#include "amq/quantize_model.h"
#include "kernel_testing.h"
#include "amq/reference.h"
#include "amq/reference_rnn.h"
#include "amq/rnn.h"

// Counts operator new calls while `counting` is set (for the no-allocation test).
namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

void *operator new(size_t n) {
    if (counting) ++allocations;
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }

namespace amq {
namespace {

std::string fixture(const std::string &name) {
    const char *dir = std::getenv("AMQ_RNN_FIXTURES");
    if (!dir) throw std::runtime_error("AMQ_RNN_FIXTURES is not set (run through ctest)");
    return std::string(dir) + "/" + name;
}

// The inputs and PyTorch's outputs written beside each fixture model.
struct TorchIo {
    size_t T = 0, B = 0;
    std::vector<float> x, h, logits;
    std::vector<int64_t> tokens;
    // Optional: initial states, lengths; PyTorch's final states.
    std::vector<float> h0, c0, h_n, c_n;
    std::vector<int64_t> lengths;
};

TorchIo load_io(const std::string &name) {
    const st::Reader r = st::Reader::open(fixture(name + ".io.safetensors"));
    TorchIo io;
    const st::TensorInfo &h = r.tensor("h");
    io.T = size_t(h.shape[0]);
    io.B = size_t(h.shape[1]);
    io.h = r.f32("h", h.shape);
    if (const st::TensorInfo *x = r.find("x")) io.x = r.f32("x", x->shape);
    if (const st::TensorInfo *t = r.find("tokens")) io.tokens = r.i64("tokens", t->shape);
    if (const st::TensorInfo *l = r.find("logits")) io.logits = r.f32("logits", l->shape);
    for (auto [name, v] : {std::pair<const char *, std::vector<float> *>{"h0", &io.h0},
                           {"c0", &io.c0},
                           {"h_n", &io.h_n},
                           {"c_n", &io.c_n}})
        if (const st::TensorInfo *t = r.find(name)) *v = r.f32(name, t->shape);
    if (const st::TensorInfo *l = r.find("lengths")) io.lengths = r.i64("lengths", l->shape);
    return io;
}

const float *or_null(const std::vector<float> &v) { return v.empty() ? nullptr : v.data(); }

struct Outputs {
    std::vector<float> h, logits, h_n, c_n;
};

// A session over the whole of `io`: from its initial states, with its lengths.
Outputs run_session(std::shared_ptr<const Model> model, const TorchIo &io) {
    Session s(std::move(model), io.B);
    const RnnShape &shape = s.model().shape();
    Outputs out;
    out.h.resize(io.T * io.B * shape.output_size());
    if (shape.lm()) {
        out.logits.resize(io.T * io.B * shape.vocab_size);
        s.run_tokens(io.tokens.data(), io.T, out.h.data(), out.logits.data());
    } else {
        s.set_state(or_null(io.h0), or_null(io.c0));
        s.run(io.x.data(), io.T, out.h.data(), io.lengths.empty() ? nullptr : io.lengths.data());
    }
    out.h_n.resize(s.h_state_size());
    out.c_n.resize(s.c_state_size());
    s.get_state(out.h_n.data(), shape.arch == Arch::lstm ? out.c_n.data() : nullptr);
    return out;
}

using amq::testing::max_abs_diff;

double mean_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) - double(b[i]));
    return s / double(a.size());
}

// The last three: every option of nn.LSTM / nn.GRU (bidirectional, proj_size,
// h0 and c0, lengths via pack_padded_sequence), 2 layers, batch 3, odd sizes;
// lstm_proj_long and gru_bi_long run 70 steps (more than one chunk of run()).
const char *kFixtures[] = {"lstm2",        "gru2",           "lstm_nobias", "lm_lstm_tied",
                           "lm_gru",       "lstm_bi_proj",   "gru_bi_long", "lstm_proj_long"};

TEST(RnnFloat, MatchesPyTorch) {
    for (const char *name : kFixtures) {
        SCOPED_TRACE(name);
        const TorchIo io = load_io(name);
        const Outputs out =
            run_session(Model::load(fixture(std::string(name) + ".safetensors")), io);
        EXPECT_LE(max_abs_diff(out.h, io.h), 1e-4);
        if (!io.logits.empty()) EXPECT_LE(max_abs_diff(out.logits, io.logits), 1e-4);
        if (!io.h_n.empty()) EXPECT_LE(max_abs_diff(out.h_n, io.h_n), 1e-4);
        if (!io.c_n.empty()) EXPECT_LE(max_abs_diff(out.c_n, io.c_n), 1e-4);
        // Not a vacuous match: the outputs are far from 0.
        double mean = 0;
        for (float v : io.h) mean += std::fabs(v);
        EXPECT_GT(mean / double(io.h.size()), 1e-3);
    }
}

ModelFile quantized(const std::string &name, int k_w, int k_a, bool lm_parts,
                    const std::string &act_method = "alternating",
                    const std::map<std::string, MatrixBits> &bits_for = {}) {
    ModelQuantizeOptions o;
    o.weights.bits = k_w;
    o.weights.threads = 1;
    o.k_a = k_a;
    o.lm_parts = lm_parts;
    o.act_method = act_method;
    o.bits_for = bits_for;
    return quantize_model(load_model(fixture(name + ".safetensors")), o);
}

struct QuantCase {
    const char *fixture;
    int k_w, k_a;
    bool lm_parts;
    const char *act_method;
};

class RnnQuantized : public ::testing::TestWithParam<QuantCase> {};

// Same codes as the scalar reference runner; sums in float instead of double.
TEST_P(RnnQuantized, MatchesTheReferenceRunner) {
    const QuantCase c = GetParam();
    const TorchIo io = load_io(c.fixture);
    const ModelFile file = quantized(c.fixture, c.k_w, c.k_a, c.lm_parts, c.act_method);
    ref::RnnOptions o;
    if (!file.shape.lm()) {
        o.h0 = or_null(io.h0);
        o.c0 = or_null(io.c0);
        o.lengths = io.lengths.empty() ? nullptr : io.lengths.data();
    }
    const ref::RnnOutput want =
        ref::run_model(file, io.x.empty() ? nullptr : io.x.data(),
                       io.tokens.empty() ? nullptr : io.tokens.data(), io.T, io.B, o);
    const Outputs got = run_session(Model::from_file(file), io);
    EXPECT_LE(max_abs_diff(got.h, want.h), 1e-4);
    if (!want.logits.empty()) EXPECT_LE(max_abs_diff(got.logits, want.logits), 1e-3);
    EXPECT_LE(max_abs_diff(got.h_n, want.h_n), 1e-4);
    EXPECT_LE(max_abs_diff(got.c_n, want.c_n), 1e-4);
    // Not vacuous: the outputs past a sequence's length are 0, the others not all.
    double mean = 0;
    for (float v : want.h) mean += std::fabs(v);
    EXPECT_GT(mean / double(want.h.size()), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Rnn, RnnQuantized,
                         ::testing::Values(QuantCase{"lstm2", 2, 2, false, "alternating"},
                                           QuantCase{"lstm2", 1, 1, false, "alternating"},
                                           QuantCase{"lstm2", 3, 3, false, "greedy"},
                                           QuantCase{"lstm2", 4, 4, false, "alternating"},
                                           QuantCase{"gru2", 2, 3, false, "alternating"},
                                           QuantCase{"gru2", 4, 1, false, "alternating"},
                                           QuantCase{"lstm_nobias", 3, 2, false, "alternating"},
                                           QuantCase{"lm_lstm_tied", 2, 2, false, "alternating"},
                                           QuantCase{"lm_lstm_tied", 3, 3, true, "alternating"},
                                           QuantCase{"lm_gru", 2, 2, true, "alternating"},
                                           QuantCase{"lm_gru", 4, 4, false, "greedy"},
                                           QuantCase{"lstm_bi_proj", 2, 2, false, "alternating"},
                                           QuantCase{"lstm_bi_proj", 1, 3, false, "alternating"},
                                           QuantCase{"lstm_bi_proj", 4, 2, false, "greedy"},
                                           QuantCase{"gru_bi_long", 2, 2, false, "alternating"},
                                           QuantCase{"gru_bi_long", 3, 4, false, "alternating"},
                                           QuantCase{"lstm_proj_long", 3, 3, false, "alternating"},
                                           QuantCase{"lstm_proj_long", 2, 1, false, "greedy"},
                                           QuantCase{"lstm2", 2, 2, false, "ternary"},
                                           QuantCase{"lm_gru", 3, 2, true, "ternary"}),
                         [](const ::testing::TestParamInfo<QuantCase> &i) {
                             return std::string(i.param.fixture) + "_w" +
                                    std::to_string(i.param.k_w) + "a" +
                                    std::to_string(i.param.k_a) + (i.param.lm_parts ? "_lmq" : "") +
                                    "_" + i.param.act_method;
                         });

// Bits per matrix (matrix_bits): each matrix with its own k_w and activation
// quantizer; h of a layer quantized once per distinct quantizer of the matrices
// it feeds. Against the reference runner, which quantizes per matrix.
struct BitsCase {
    const char *fixture;
    bool lm_parts;
    std::map<std::string, MatrixBits> bits;
};

std::vector<BitsCase> bits_cases() {
    return {
        // h_0 feeds weight_hh_l0 (ternary) and weight_ih_l1 (4 bits): two slots.
        {"lstm2",
         false,
         {{"weight_ih_l0", {3, 1, "greedy"}},
          {"weight_hh_l0", {2, 2, "ternary"}},
          {"weight_ih_l1", {1, 4, "alternating"}},
          {"weight_hh_l1", {4, 3, ""}}}},
        {"gru2", false, {{"weight_hh_l1", {1, 3, ""}}, {"weight_ih_l1", {3, 3, ""}}}},
        // The decoder on its own bits, the embedding at 3 bits, ternary recurrence.
        {"lm_gru",
         false,
         {{"decoder.weight", {4, 4, ""}},
          {"embedding.weight", {3, 3, ""}},
          {"weight_hh_l0", {2, 2, "ternary"}}}},
        // Tied: the embedding is the decoder, its k_a that of the decoder product.
        {"lm_lstm_tied", true, {{"embedding.weight", {4, 3, "greedy"}}}},
    };
}

TEST(RnnBitsPerMatrix, MatchesTheReferenceRunner) {
    for (const BitsCase &c : bits_cases()) {
        SCOPED_TRACE(c.fixture);
        const TorchIo io = load_io(c.fixture);
        const ModelFile file = quantized(c.fixture, 2, 2, c.lm_parts, "alternating", c.bits);
        for (const auto &[name, b] : c.bits) {
            EXPECT_EQ(file.bits_of(name).k_w, b.k_w) << name;
            EXPECT_EQ(file.quant.at(name).k, b.k_w) << name;
        }
        const ref::RnnOutput want =
            ref::run_model(file, io.x.empty() ? nullptr : io.x.data(),
                           io.tokens.empty() ? nullptr : io.tokens.data(), io.T, io.B);
        const auto model = Model::from_file(file);
        EXPECT_EQ(model->matrices().size(), file.quant.size());
        const Outputs got = run_session(model, io);
        EXPECT_LE(max_abs_diff(got.h, want.h), 1e-4);
        if (!want.logits.empty()) EXPECT_LE(max_abs_diff(got.logits, want.logits), 1e-3);
        // Not the model-wide bits: the same model at W2A2 everywhere differs.
        const ref::RnnOutput plain =
            ref::run_model(quantized(c.fixture, 2, 2, c.lm_parts), io.x.empty() ? nullptr : io.x.data(),
                           io.tokens.empty() ? nullptr : io.tokens.data(), io.T, io.B);
        EXPECT_GT(max_abs_diff(plain.h, want.h), 1e-3);
    }
}

TEST(RnnQuantizedError, FallsAsBitsRise) {
    for (const char *name : {"lstm2", "gru2"}) {
        SCOPED_TRACE(name);
        const TorchIo io = load_io(name);
        double last = INFINITY;
        for (int bits = 2; bits <= 4; ++bits) {
            const Outputs q = run_session(Model::from_file(quantized(name, bits, bits, false)), io);
            const double err = mean_abs_diff(q.h, io.h);
            EXPECT_LT(err, last) << "W" << bits << "A" << bits;
            last = err;
        }
    }
}

TEST(RnnSessions, ParallelThreadsGiveTheSameResults) {
    const TorchIo io = load_io("lstm2");
    const auto model = Model::from_file(quantized("lstm2", 2, 2, false));
    const Outputs once = run_session(model, io);
    std::vector<Outputs> results(6);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < results.size(); ++i)
        threads.emplace_back([&, i] {
            for (int rep = 0; rep < 3; ++rep) results[i] = run_session(model, io);
        });
    for (auto &t : threads) t.join();
    for (const Outputs &r : results) EXPECT_EQ(r.h, once.h);
}

// run() (layer by layer, the input products of a chunk batched) gives what step()
// gives, across chunk boundaries.
TEST(RnnSessions, RunMatchesSteps) {
    for (const char *name : {"lstm2", "gru2", "lstm_proj_long", "lstm2 bits per matrix"}) {
        SCOPED_TRACE(name);
        const bool per_matrix = std::string(name) == "lstm2 bits per matrix";
        const auto model = Model::from_file(
            per_matrix ? quantized("lstm2", 2, 2, false, "alternating", bits_cases()[0].bits)
                       : quantized(name, 2, 3, false));
        const size_t B = 2, I = model->shape().input_size, H = model->shape().h_size();
        const size_t T = Session::kRunChunk + 7;
        std::vector<float> x(T * B * I);
        std::mt19937 rng(3);
        std::normal_distribution<float> normal;
        for (float &v : x) v = normal(rng);
        std::vector<float> by_run(T * B * H), by_step;
        Session a(model, B), b(model, B);
        a.run(x.data(), T, by_run.data());
        for (size_t t = 0; t < T; ++t) {
            const float *h = b.step(&x[t * B * I]);
            by_step.insert(by_step.end(), h, h + B * H);
        }
        EXPECT_LE(max_abs_diff(by_run, by_step), 1e-5);
        for (int l = 0; l < 2; ++l)
            EXPECT_EQ(std::vector<float>(a.hidden(l), a.hidden(l) + B * H),
                      std::vector<float>(b.hidden(l), b.hidden(l) + B * H));
    }
}

TEST(RnnSessions, ResetStartsOver) {
    const TorchIo io = load_io("gru2");
    const auto model = Model::from_file(quantized("gru2", 2, 2, false));
    Session s(model, io.B);
    const size_t n = io.T * io.B * model->shape().hidden_size;
    std::vector<float> first(n), again(n);
    s.run(io.x.data(), io.T, first.data());
    s.run(io.x.data(), io.T, again.data());
    EXPECT_NE(first, again);  // the state carries over...
    s.reset();
    s.run(io.x.data(), io.T, again.data());
    EXPECT_EQ(first, again);  // ...until reset()
}

// After the first step (which sizes the kernels' per-thread scratch), steps
// allocate nothing: quantized and float, LSTM and GRU, batch 1 and 3, LM.
TEST(RnnSessions, StepsDoNotAllocate) {
    for (const char *name : {"lstm2", "gru2", "lm_gru", "lstm_proj_long"})
        for (int quant : {0, 1, 2}) {  // float, W2A2, bits per matrix with ternary
            SCOPED_TRACE(std::string(name) + (quant ? " quantized" : " float"));
            const TorchIo io = load_io(name);
            const std::map<std::string, MatrixBits> bits = {{"weight_hh_l0", {3, 2, "ternary"}}};
            const auto model =
                quant ? Model::from_file(quantized(name, 2, 2, true, "alternating",
                                                   quant == 2 ? bits : std::map<std::string, MatrixBits>{}))
                      : Model::load(fixture(std::string(name) + ".safetensors"));
            Session s(model, io.B);
            auto step = [&](size_t t) {
                if (model->shape().lm())
                    s.step_tokens(&io.tokens[t * io.B]);
                else
                    s.step(&io.x[t * io.B * model->shape().input_size]);
            };
            step(0);
            allocations = 0;
            counting = true;
            for (size_t t = 1; t < io.T; ++t) step(t);
            counting = false;
            EXPECT_EQ(allocations.load(), 0u);
        }
}

TEST(RnnSessions, BadInputNamesTheProblem) {
    const auto lm = Model::load(fixture("lm_lstm_tied.safetensors"));
    Session s(lm, 2);
    const int64_t bad[2] = {0, 50};
    try {
        s.step_tokens(bad);
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_NE(
            std::string(e.what()).find("token 50 (batch item 1) is out of range, expected 0..49"),
            std::string::npos)
            << e.what();
    }
    EXPECT_THROW(Session(lm, 0), Error);
    for (const bool quant : {false, true}) {
        const auto m = quant ? Model::from_file(quantized("lstm2", 2, 2, false))
                             : Model::load(fixture("lstm2.safetensors"));
        Session q(m, 2);
        std::vector<float> x(2 * 37, 0.5f);
        x[37 + 5] = NAN;
        try {
            q.step(x.data());
            FAIL() << "no error";
        } catch (const Error &e) {
            EXPECT_NE(std::string(e.what()).find("x[1][5] is nan"), std::string::npos) << e.what();
        }
    }
    const auto plain = Model::load(fixture("lstm2.safetensors"));
    Session p(plain, 1);
    const int64_t ok[1] = {0};
    EXPECT_THROW(p.step_tokens(ok), Error);
    EXPECT_THROW(p.logits(), Error);
    EXPECT_THROW(Model::load(fixture("missing.safetensors")), std::runtime_error);
}

// The state in and out: set_state then run equals one run over the steps before
// and after; lengths: a sequence cut short gives what running it alone gives.
TEST(RnnSessions, StatesAndLengths) {
    for (const char *name : {"lstm_bi_proj", "gru_bi_long", "lstm_proj_long"})
        for (const bool quant : {false, true}) {
            SCOPED_TRACE(std::string(name) + (quant ? " quantized" : " float"));
            const auto model = quant ? Model::from_file(quantized(name, 2, 2, false))
                                     : Model::load(fixture(std::string(name) + ".safetensors"));
            const TorchIo io = load_io(name);
            const RnnShape &shape = model->shape();
            const size_t B = io.B, I = shape.input_size, W = shape.output_size();
            // Item 1 alone, for its length, from its own initial state.
            const int64_t len = io.lengths[1];
            std::vector<float> x1, h1, c1;
            for (int64_t t = 0; t < len; ++t)
                x1.insert(x1.end(), &io.x[(size_t(t) * B + 1) * I],
                          &io.x[(size_t(t) * B + 2) * I]);
            const size_t LD = size_t(shape.layers) * size_t(shape.directions());
            for (size_t ld = 0; ld < LD; ++ld) {
                const size_t hs = shape.h_size(), hh = shape.hidden_size;
                h1.insert(h1.end(), &io.h0[(ld * B + 1) * hs], &io.h0[(ld * B + 2) * hs]);
                if (!io.c0.empty())
                    c1.insert(c1.end(), &io.c0[(ld * B + 1) * hh], &io.c0[(ld * B + 2) * hh]);
            }
            Session one(model, 1);
            one.set_state(h1.data(), or_null(c1));
            std::vector<float> out1(size_t(len) * W);
            one.run(x1.data(), size_t(len), out1.data());
            const Outputs all = run_session(model, io);
            // (Batch 1 and 3 may sum in another order: equal to rounding.)
            for (int64_t t = 0; t < int64_t(io.T); ++t)
                for (size_t e = 0; e < W; ++e) {
                    const float got = all.h[(size_t(t) * B + 1) * W + e];
                    if (t < len)
                        EXPECT_NEAR(got, out1[size_t(t) * W + e], 1e-5) << t << " " << e;
                    else
                        EXPECT_EQ(got, 0.0f) << t << " " << e;
                }
            std::vector<float> hn1(one.h_state_size());
            one.get_state(hn1.data(), nullptr);
            for (size_t ld = 0; ld < LD; ++ld)
                for (size_t e = 0; e < shape.h_size(); ++e)
                    EXPECT_NEAR(all.h_n[(ld * B + 1) * shape.h_size() + e],
                                hn1[ld * shape.h_size() + e], 1e-5);
            if (shape.bidirectional) continue;
            // A unidirectional run in two pieces, the state carried over by
            // get_state / set_state into another session, is one run.
            const size_t T1 = io.T / 2;
            Session a(model, B), b(model, B);
            a.set_state(or_null(io.h0), or_null(io.c0));
            std::vector<float> out(io.T * B * W), hn(a.h_state_size()), cn(a.c_state_size());
            std::vector<int64_t> first(B), second(B);
            for (size_t i = 0; i < B; ++i) {
                first[i] = std::min<int64_t>(io.lengths[i], int64_t(T1));
                second[i] = io.lengths[i] - first[i];  // 0: nothing left
            }
            a.run(io.x.data(), T1, out.data(), first.data());
            a.get_state(hn.data(), cn.empty() ? nullptr : cn.data());
            b.set_state(hn.data(), or_null(cn));
            b.run(&io.x[T1 * B * I], io.T - T1, &out[T1 * B * W], second.data());
            EXPECT_LE(max_abs_diff(out, all.h), 1e-5);
        }
}

TEST(RnnSessions, OptionsBadInput) {
    const auto bi = Model::load(fixture("gru_bi_long.safetensors"));
    Session s(bi, 3);
    std::vector<float> x(3 * bi->shape().input_size, 0.1f);
    try {
        s.step(x.data());
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("step: the model is bidirectional"),
                  std::string::npos)
            << e.what();
    }
    std::vector<float> h0(s.h_state_size(), 0.5f);
    EXPECT_EQ(s.c_state_size(), 0u);
    try {
        s.set_state(h0.data(), h0.data());
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("c0 given for a GRU"), std::string::npos) << e.what();
    }
    h0[3 * 21 + 2] = INFINITY;  // row 1 (layer 0, reverse), item 0
    EXPECT_THROW(s.set_state(h0.data(), nullptr), Error);
    std::vector<float> got(s.h_state_size(), 1.0f);
    s.get_state(got.data(), nullptr);
    EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f));  // a refused state changes nothing
    const int64_t lengths[3] = {2, 5, 3};
    try {
        s.run(std::vector<float>(4 * x.size(), 0.0f).data(), 4, nullptr, lengths);
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("lengths[1] = 5, expected 0..4"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(s.hidden(0, 2), Error);
    EXPECT_THROW(s.hidden(2, 0), Error);
    EXPECT_NO_THROW(s.hidden(1, 1));
    EXPECT_THROW(s.cell(0, 0), Error);
}

TEST(CApi, StatesLengthsAndBidirectional) {
    amq_model *m = nullptr;
    ASSERT_EQ(amq_model_load(fixture("lstm_bi_proj.safetensors").c_str(), &m), AMQ_OK)
        << amq_last_error();
    amq_model_info info;
    ASSERT_EQ(amq_model_get_info(m, &info), AMQ_OK);
    EXPECT_EQ(info.bidirectional, 1);
    EXPECT_EQ(info.proj_size, 11u);
    EXPECT_EQ(info.h_size, 11u);
    EXPECT_EQ(info.output_size, 22u);
    const TorchIo io = load_io("lstm_bi_proj");
    amq_session *s = nullptr;
    ASSERT_EQ(amq_session_new(m, io.B, &s), AMQ_OK);
    ASSERT_EQ(amq_session_set_state(s, io.h0.data(), io.c0.data()), AMQ_OK) << amq_last_error();
    std::vector<float> h(io.T * io.B * info.output_size), h_n(io.h_n.size()), c_n(io.c_n.size());
    ASSERT_EQ(amq_session_run_lengths(s, io.x.data(), io.T, io.lengths.data(), h.data()), AMQ_OK)
        << amq_last_error();
    ASSERT_EQ(amq_session_get_state(s, h_n.data(), c_n.data()), AMQ_OK);
    EXPECT_LE(max_abs_diff(h, io.h), 1e-4);
    EXPECT_LE(max_abs_diff(h_n, io.h_n), 1e-4);
    EXPECT_LE(max_abs_diff(c_n, io.c_n), 1e-4);
    EXPECT_EQ(amq_session_step(s, io.x.data(), nullptr), AMQ_ERR_ARGUMENT);
    EXPECT_NE(std::string(amq_last_error()).find("bidirectional"), std::string::npos);
    const int64_t bad[3] = {1, -1, 1};
    EXPECT_EQ(amq_session_run_lengths(s, io.x.data(), io.T, bad, nullptr), AMQ_ERR_ARGUMENT);
    EXPECT_NE(std::string(amq_last_error()).find("lengths[1] = -1"), std::string::npos);
    EXPECT_EQ(amq_session_set_state(nullptr, nullptr, nullptr), AMQ_ERR_ARGUMENT);
    amq_session_free(s);
    amq_model_free(m);
}

TEST(CApi, LoadsRunsAndReportsErrors) {
    amq_model *m = nullptr;
    ASSERT_EQ(amq_model_load(fixture("lstm2.safetensors").c_str(), &m), AMQ_OK) << amq_last_error();
    amq_model_info info;
    ASSERT_EQ(amq_model_get_info(m, &info), AMQ_OK);
    EXPECT_EQ(info.arch, 0);
    EXPECT_EQ(info.layers, 2);
    EXPECT_EQ(info.input_size, 37u);
    EXPECT_EQ(info.hidden_size, 129u);
    const TorchIo io = load_io("lstm2");
    amq_session *s = nullptr;
    ASSERT_EQ(amq_session_new(m, io.B, &s), AMQ_OK);
    std::vector<float> h(io.T * io.B * info.hidden_size);
    ASSERT_EQ(amq_session_run(s, io.x.data(), io.T, h.data()), AMQ_OK) << amq_last_error();
    EXPECT_LE(max_abs_diff(h, io.h), 1e-4);
    EXPECT_EQ(amq_session_step(s, nullptr, nullptr), AMQ_ERR_ARGUMENT);
    EXPECT_NE(std::string(amq_last_error()).find("x is null"), std::string::npos);
    const int64_t tok = 0;
    EXPECT_EQ(amq_session_step_tokens(s, &tok, nullptr, nullptr), AMQ_ERR_ARGUMENT);
    EXPECT_NE(std::string(amq_last_error()).find("not a language model"), std::string::npos);
    amq_session_free(s);
    amq_session *s0 = nullptr;
    EXPECT_EQ(amq_session_new(m, 0, &s0), AMQ_ERR_ARGUMENT);
    EXPECT_EQ(s0, nullptr);
    amq_model_free(m);

    amq_model *bad = nullptr;
    EXPECT_EQ(amq_model_load(fixture("nothing-here.amq").c_str(), &bad), AMQ_ERR_IO);
    EXPECT_EQ(bad, nullptr);
    EXPECT_NE(std::string(amq_last_error()).find("nothing-here.amq"), std::string::npos);
    EXPECT_EQ(amq_model_load(fixture("lstm2.io.safetensors").c_str(), &bad), AMQ_ERR_FORMAT);
    EXPECT_EQ(amq_model_load(nullptr, &bad), AMQ_ERR_ARGUMENT);
    EXPECT_EQ(amq_set_num_threads(0), AMQ_ERR_ARGUMENT);
    // The language-model head.
    const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
    std::vector<float> logp(5), want(5);
    float lse = 0;
    ASSERT_EQ(amq_log_probs(logits.data(), 5, logp.data(), &lse), AMQ_OK) << amq_last_error();
    EXPECT_NEAR(lse, ref::log_softmax(logits.data(), 5, want.data()), 1e-6);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(logp[size_t(i)], want[size_t(i)], 1e-6);
    size_t top[2] = {9, 9};
    ASSERT_EQ(amq_top_k(logits.data(), 5, 2, top), AMQ_OK);
    EXPECT_EQ(top[0], 1u);
    EXPECT_EQ(top[1], 3u);
    EXPECT_EQ(amq_top_k(logits.data(), 5, 6, top), AMQ_ERR_ARGUMENT);
    EXPECT_NE(std::string(amq_last_error()).find("top_k: k = 6"), std::string::npos);
    EXPECT_EQ(amq_log_probs(nullptr, 5, nullptr, nullptr), AMQ_ERR_ARGUMENT);
    amq_model_free(nullptr);
    amq_session_free(nullptr);
}

}  // namespace
}  // namespace amq
