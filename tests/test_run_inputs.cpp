// amq run's inputs and outputs files: RunInputs (the header checked against the
// model's sizes, steps read a chunk at a time with each value checked) on every
// seed of the fuzzing corpus, from a file and from bytes; st::read_header against
// st::Reader; st::FileWriter (a file written in pieces) against st::Writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "amq/run_inputs.h"
#include "amq/safetensors.h"

namespace {

namespace fs = std::filesystem;
using amq::RnnShape;
using amq::RunInputs;
using amq::st::FormatError;

// The two models of fuzz_run_inputs.cpp.
RnnShape plain_shape() {
    RnnShape s;
    s.layers = 1;
    s.input_size = 3;
    s.hidden_size = 4;
    return s;
}
RnnShape lm_shape() {
    RnnShape s = plain_shape();
    s.input_size = 2;
    s.vocab_size = 7;
    return s;
}

std::vector<uint8_t> read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
}

std::string seed(const std::string &name) {
    return std::string(AMQ_RUN_INPUTS_CORPUS) + "/" + name + ".safetensors";
}

// The message of the FormatError `f` throws, or "" (and a failure) otherwise.
template <typename F>
std::string error_of(F &&f) {
    try {
        f();
    } catch (const FormatError &e) {
        return e.what();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "expected a FormatError, got: " << e.what();
        return "";
    }
    ADD_FAILURE() << "expected a FormatError, nothing was thrown";
    return "";
}

// Every step, in chunks of `chunk`, as floats (tokens converted).
std::vector<double> read_all(const RunInputs &in, size_t chunk) {
    std::vector<double> all;
    const size_t B = in.batch(), W = in.width();
    std::vector<float> x(chunk * B * W);
    std::vector<int64_t> ids(chunk * B);
    for (size_t t0 = 0; t0 < in.steps(); t0 += chunk) {
        const size_t n = std::min(chunk, in.steps() - t0);
        if (in.tokens()) {
            in.read_tokens(t0, n, ids.data());
            all.insert(all.end(), ids.begin(), ids.begin() + n * B);
        } else {
            in.read_x(t0, n, x.data());
            all.insert(all.end(), x.begin(), x.begin() + n * B * W);
        }
    }
    return all;
}

struct Valid {
    const char *name;
    bool lm;
    size_t T, B;
};
const Valid kValid[] = {{"x_valid", false, 5, 2},
                        {"x_one_step", false, 1, 1},
                        {"x_with_other_tensors", false, 4, 3},
                        {"tokens_valid", true, 4, 3},
                        {"tokens_long", true, 20, 1},
                        {"x_h0_c0_lengths", false, 5, 2}};

TEST(RunInputs, ValidSeedsReadTheSameInAnyChunksFromFileAndBytes) {
    for (const Valid &v : kValid) {
        SCOPED_TRACE(v.name);
        const RnnShape s = v.lm ? lm_shape() : plain_shape();
        const RunInputs f = RunInputs::open(seed(v.name), s);
        const RunInputs b = RunInputs::from_bytes(read_file(seed(v.name)), "bytes", s);
        EXPECT_EQ(f.tokens(), v.lm);
        EXPECT_EQ(f.steps(), v.T);
        EXPECT_EQ(f.batch(), v.B);
        EXPECT_EQ(f.width(), v.lm ? 1u : 3u);
        // The values of the tensor as st::Reader gives them.
        const amq::st::Reader r = amq::st::Reader::open(seed(v.name));
        std::vector<double> want;
        if (v.lm)
            for (int64_t id : r.i64("tokens", {int64_t(v.T), int64_t(v.B)})) want.push_back(id);
        else
            for (float x : r.f32("x", {int64_t(v.T), int64_t(v.B), 3})) want.push_back(x);
        for (size_t chunk : {size_t(1), size_t(3), v.T, v.T + 4}) {
            EXPECT_EQ(read_all(f, chunk), want) << "chunk " << chunk;
            EXPECT_EQ(read_all(b, chunk), want) << "chunk " << chunk;
        }
    }
}

// The optional initial states and lengths, read whole when the file is opened.
TEST(RunInputs, StatesAndLengths) {
    const RnnShape s = plain_shape();
    for (const bool bytes : {false, true}) {
        const std::string path = seed("x_h0_c0_lengths");
        const RunInputs in = bytes ? RunInputs::from_bytes(read_file(path), "bytes", s)
                                   : RunInputs::open(path, s);
        EXPECT_EQ(in.h0(), std::vector<float>(8, 0.25f));
        EXPECT_EQ(in.c0(), std::vector<float>(8, -0.5f));
        EXPECT_EQ(in.lengths(), (std::vector<int64_t>{3, 5}));
        const RunInputs plain = RunInputs::open(seed("x_valid"), s);
        EXPECT_TRUE(plain.h0().empty() && plain.c0().empty() && plain.lengths().empty());
    }
    // A bidirectional projected LSTM of 2 layers wants h0 [4, B, proj_size].
    RnnShape bi = s;
    bi.layers = 2;
    bi.bidirectional = true;
    bi.proj_size = 2;
    const std::string message =
        error_of([&] { RunInputs::open(seed("x_h0_c0_lengths"), bi); });
    EXPECT_NE(message.find("tensor 'h0': shape [1, 2, 4], expected [4, 2, 2]"), std::string::npos)
        << message;
    RnnShape gru = s;
    gru.arch = amq::Arch::gru;
    EXPECT_NE(error_of([&] { RunInputs::open(seed("x_h0_c0_lengths"), gru); })
                  .find("tensor 'c0': the model is a GRU"),
              std::string::npos);
}

struct Bad {
    const char *name;
    bool lm;
    const char *message;  // after "<file>: "
};

const Bad kBad[] = {
    {"x_nan", false, "tensor 'x': step 2, sequence 1, element 2 is nan, expected a finite"},
    {"x_inf", false, "tensor 'x': step 0, sequence 1, element 1 is -inf, expected a finite"},
    {"tokens_out_of_range", true,
     "tensor 'tokens': step 1, sequence 1 is 7, expected 0..6 (the model's vocabulary)"},
    {"tokens_negative", true, "tensor 'tokens': step 1, sequence 0 is -1, expected 0..6"},
    {"both_x_and_tokens", false, "holds both 'x' and 'tokens', expected one of them"},
    {"neither", false, "expected a tensor 'x' (F32 [T, B, input_size]) or 'tokens'"},
    {"x_f64", false, "tensor 'x': dtype F64, expected F32"},
    {"x_rank2", false, "tensor 'x': shape [5, 6], expected [T, B, input_size] with T, B >= 1"},
    {"x_wrong_width", false,
     "tensor 'x': shape [2, 2, 4], expected [T, B, 3] (the model's input_size)"},
    {"x_zero_steps", false, "tensor 'x': shape [0, 2, 3], expected [T, B, input_size]"},
    {"tokens_i32", true, "tensor 'tokens': dtype I32, expected I64"},
    {"tokens_rank3", true, "tensor 'tokens': shape [2, 1, 1], expected [T, B] with T, B >= 1"},
    {"x_valid", true, "tensor 'x': the model is a language model; give 'tokens' (I64 [T, B])"},
    {"tokens_valid", false, "tensor 'tokens': the model has no embedding"},
    {"empty", false, "file is 0 bytes, too short for the 8-byte header size"},
    {"header_past_end", false, "header size 1000 runs past the end of the file"},
    {"bad_json", false, "header is not valid JSON"},
    {"truncated", false, "tensor 'x': data_offsets [0, 120] end past the data section"},
    {"lengths_zero", false,
     "tensor 'lengths': sequence 0 is 0, expected 1..5 (the steps of the inputs)"},
    {"lengths_past_end", false, "tensor 'lengths': sequence 0 is 6, expected 1..5"},
    {"h0_wrong_shape", false,
     "tensor 'h0': shape [2, 2, 4], expected [1, 2, 4] [layers * directions, B, h_size]"},
    {"c0_nan", false, "tensor 'c0': [0, 0, 3] is nan, expected a finite value"},
    {"x_nul_padding", false, "header byte at file offset 77 is NUL (0x00); the header is JSON"},
    {"x_tab_padding", false, "header byte at file offset 77 is 0x09 after the JSON object"},
};

TEST(RunInputs, MalformedSeedsGiveTheirError) {
    for (const Bad &c : kBad) {
        SCOPED_TRACE(c.name);
        const RnnShape s = c.lm ? lm_shape() : plain_shape();
        const std::string path = seed(c.name);
        const std::string from_file = error_of([&] {
            const RunInputs in = RunInputs::open(path, s);
            read_all(in, 2);
        });
        EXPECT_EQ(from_file.rfind(path + ": " + c.message, 0), 0u) << from_file;
        const std::string from_bytes = error_of([&] {
            const RunInputs in = RunInputs::from_bytes(read_file(path), "bytes", s);
            read_all(in, 4);
        });
        EXPECT_EQ(from_bytes.rfind(std::string("bytes: ") + c.message, 0), 0u) << from_bytes;
    }
}

// Each seed of the corpus is one of those above.
TEST(RunInputs, EverySeedIsChecked) {
    size_t n = 0;
    for (const auto &e : fs::directory_iterator(AMQ_RUN_INPUTS_CORPUS)) {
        const std::string name = e.path().stem().string();
        const bool known = std::any_of(std::begin(kValid), std::end(kValid),
                                       [&](const Valid &v) { return name == v.name; }) ||
                           std::any_of(std::begin(kBad), std::end(kBad),
                                       [&](const Bad &b) { return name == b.name; });
        EXPECT_TRUE(known) << name << " is in the corpus but not checked here";
        ++n;
    }
    EXPECT_GE(n, 20u);
}

TEST(Safetensors, ReadHeaderMatchesReader) {
    const std::string path = seed("x_with_other_tensors");
    const amq::st::Header h = amq::st::read_header(path);
    const amq::st::Reader r = amq::st::Reader::open(path);
    EXPECT_EQ(h.metadata, r.metadata());
    ASSERT_EQ(h.tensors.size(), r.tensors().size());
    const std::vector<uint8_t> bytes = read_file(path);
    EXPECT_EQ(h.file_size, bytes.size());
    for (size_t i = 0; i < h.tensors.size(); ++i) {
        EXPECT_EQ(h.tensors[i].name, r.tensors()[i].name);
        EXPECT_EQ(h.tensors[i].shape, r.tensors()[i].shape);
        std::vector<uint8_t> got(h.tensors[i].nbytes());
        amq::st::read_at(path, h.data_start + h.tensors[i].begin, got.data(), got.size());
        EXPECT_TRUE(std::equal(got.begin(), got.end(), r.data(r.tensors()[i])));
    }
    for (const char *bad : {"empty", "header_past_end", "bad_json", "truncated"}) {
        const std::string a = error_of([&] { amq::st::read_header(seed(bad)); });
        const std::string b = error_of([&] { amq::st::Reader::open(seed(bad)); });
        EXPECT_EQ(a, b);
    }
    EXPECT_THROW(amq::st::read_header(seed("nope")), std::runtime_error);
}

TEST(Safetensors, FileWriterInPiecesEqualsWriter) {
    const fs::path dir = fs::temp_directory_path() / ("amq_filewriter_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string path = (dir / "out.safetensors").string();
    std::mt19937 rng(3);
    std::vector<float> h(7 * 3 * 5), logits(7 * 3 * 11);
    for (float &v : h) v = float(rng() % 1000) / 7.f;
    for (float &v : logits) v = -float(rng() % 1000) / 3.f;
    amq::st::Writer w;
    w.set_metadata("format", "amq-outputs");
    w.set_metadata("model", "m.amq");
    w.add("h", amq::st::DType::F32, {7, 3, 5}, h.data(), h.size() * 4);
    w.add("logits", amq::st::DType::F32, {7, 3, 11}, logits.data(), logits.size() * 4);
    {
        amq::st::FileWriter f(
            path, {{"format", "amq-outputs"}, {"model", "m.amq"}},
            {{"h", amq::st::DType::F32, {7, 3, 5}}, {"logits", amq::st::DType::F32, {7, 3, 11}}});
        // Steps in chunks of 3 (3, 3, 1), the last chunk first.
        for (size_t t0 : {6, 3, 0}) {
            const size_t n = std::min<size_t>(3, 7 - t0);
            f.write(1, t0 * 33 * 4, logits.data() + t0 * 33, n * 33 * 4);
            f.write(0, t0 * 15 * 4, h.data() + t0 * 15, n * 15 * 4);
        }
        EXPECT_FALSE(fs::exists(path));  // not before finish()
        EXPECT_THROW(f.write(0, 100 * 4, h.data(), 6 * 4), std::invalid_argument);
        f.finish();
    }
    EXPECT_EQ(read_file(path), w.bytes());
    {
        amq::st::FileWriter f(dir / "partial.safetensors", {},
                              {{"h", amq::st::DType::F32, {2, 3}}});
        f.write(0, 0, h.data(), 3 * 4);
        EXPECT_THROW(f.finish(), std::logic_error);
    }
    {
        amq::st::FileWriter f(dir / "abandoned.safetensors", {},
                              {{"h", amq::st::DType::F32, {2, 3}}});
        f.write(0, 0, h.data(), 3 * 4);
    }
    // Neither the unfinished files nor their temporary files are left.
    size_t left = 0;
    for (const auto &e : fs::directory_iterator(dir))
        left += e.path().filename() != "out.safetensors";
    EXPECT_EQ(left, 0u);
    fs::remove_all(dir);
}

}  // namespace
