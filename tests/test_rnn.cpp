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
    return io;
}

struct Outputs {
    std::vector<float> h, logits;
};

Outputs run_session(std::shared_ptr<const Model> model, const TorchIo &io) {
    Session s(std::move(model), io.B);
    const RnnShape &shape = s.model().shape();
    Outputs out;
    out.h.resize(io.T * io.B * shape.hidden_size);
    if (shape.lm()) {
        out.logits.resize(io.T * io.B * shape.vocab_size);
        s.run_tokens(io.tokens.data(), io.T, out.h.data(), out.logits.data());
    } else {
        s.run(io.x.data(), io.T, out.h.data());
    }
    return out;
}

double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    EXPECT_EQ(a.size(), b.size());
    double m = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

double mean_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) - double(b[i]));
    return s / double(a.size());
}

const char *kFixtures[] = {"lstm2", "gru2", "lstm_nobias", "lm_lstm_tied", "lm_gru"};

TEST(RnnFloat, MatchesPyTorch) {
    for (const char *name : kFixtures) {
        SCOPED_TRACE(name);
        const TorchIo io = load_io(name);
        const Outputs out =
            run_session(Model::load(fixture(std::string(name) + ".safetensors")), io);
        EXPECT_LE(max_abs_diff(out.h, io.h), 1e-4);
        if (!io.logits.empty()) EXPECT_LE(max_abs_diff(out.logits, io.logits), 1e-4);
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
    const ref::RnnOutput want =
        ref::run_model(file, io.x.empty() ? nullptr : io.x.data(),
                       io.tokens.empty() ? nullptr : io.tokens.data(), io.T, io.B);
    const Outputs got = run_session(Model::from_file(file), io);
    EXPECT_LE(max_abs_diff(got.h, want.h), 1e-4);
    if (!want.logits.empty()) EXPECT_LE(max_abs_diff(got.logits, want.logits), 1e-3);
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
    for (const char *name : {"lstm2", "gru2", "lstm2 bits per matrix"}) {
        SCOPED_TRACE(name);
        const bool per_matrix = std::string(name) == "lstm2 bits per matrix";
        const auto model = Model::from_file(
            per_matrix ? quantized("lstm2", 2, 2, false, "alternating", bits_cases()[0].bits)
                       : quantized(name, 2, 3, false));
        const size_t B = 2, I = model->shape().input_size, H = model->shape().hidden_size;
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
    for (const char *name : {"lstm2", "gru2", "lm_gru"})
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
