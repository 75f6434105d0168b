// The model file (docs/MODEL_FORMAT.md): the safetensors container reader and
// writer (amq/safetensors.h) and the model-level load/save (amq/model.h).
// Round trips must be bit-exact; every malformed file must give its own
// FormatError naming the file and the tensor or metadata key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "amq/model.h"
#include "amq/safetensors.h"

namespace amq {
namespace {

using st::DType;
using st::FormatError;

const std::string kLabel = "bad.safetensors";

// ---------------------------------------------------------------------------
// Helpers

// A file made by hand: the 8-byte size field (the header's size unless given),
// the header text as is, then `data`.
std::vector<uint8_t> raw_file(const std::string &header, const std::vector<uint8_t> &data = {},
                              std::optional<uint64_t> size_field = std::nullopt) {
    const uint64_t n = size_field ? *size_field : header.size();
    std::vector<uint8_t> out(8);
    std::memcpy(out.data(), &n, 8);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

// The message of the FormatError `f` throws ("" and a test failure when it
// throws nothing or something else).
template <typename F>
std::string format_error(F &&f) {
    try {
        f();
    } catch (const FormatError &e) {
        return e.what();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "expected a FormatError, got another exception: " << e.what();
        return "";
    }
    ADD_FAILURE() << "expected a FormatError, nothing was thrown";
    return "";
}

std::string reader_error(const std::vector<uint8_t> &bytes) {
    return format_error([&] { st::Reader::from_bytes(bytes, kLabel); });
}

std::string model_error(const std::vector<uint8_t> &bytes) {
    return format_error([&] { load_model_from_bytes(bytes, kLabel); });
}

// `message` starts with the file label and holds every part of `parts`.
#define EXPECT_MESSAGE(message, ...)                                                          \
    do {                                                                                      \
        const std::string m_ = (message);                                                     \
        EXPECT_EQ(m_.rfind(kLabel + ": ", 0), 0u) << "does not start with the label: " << m_; \
        for (const std::string &part_ : std::vector<std::string>{__VA_ARGS__})                \
            EXPECT_NE(m_.find(part_), std::string::npos)                                      \
                << "message lacks \"" << part_ << "\": " << m_;                               \
    } while (0)

std::vector<uint8_t> as_bytes(const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    return std::vector<uint8_t>(b, b + n);
}

// A fresh directory for files of one test.
std::filesystem::path temp_dir(const std::string &name) {
    auto dir = std::filesystem::path(testing::TempDir()) /
               ("amq_model_file_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// ---------------------------------------------------------------------------
// Random models

struct ModelSpec {
    Arch arch = Arch::lstm;
    int layers = 2;
    size_t input = 37, hidden = 129, vocab = 0;
    bool tied = false, bias = true;
    bool quantized = false;
    int k_w = 2;
    bool lm_quantized = false;  // .amq: embedding / decoder as planes too
    bool bidirectional = false;
    size_t proj = 0;
};

std::vector<float> random_floats(std::mt19937 &rng, size_t n) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float &x : v) x = u(rng);
    return v;
}

QuantTensor random_quant(std::mt19937 &rng, int k, size_t rows, size_t cols) {
    QuantTensor q;
    q.k = k;
    q.rows = rows;
    q.cols = cols;
    const size_t words = q.words();
    const uint64_t mask = cols % 64 ? ~0ull >> (64 - cols % 64) : ~0ull;
    q.planes.resize(size_t(k) * rows * words);
    for (size_t i = 0; i < q.planes.size(); ++i) {
        uint64_t w = (uint64_t(rng()) << 32) | rng();
        if (i % words == words - 1) w &= mask;
        q.planes[i] = w;
    }
    std::uniform_real_distribution<float> u(0.001f, 2.0f);
    q.alpha.resize(rows * size_t(k));
    for (float &a : q.alpha) a = u(rng);
    return q;
}

ModelFile make_model(const ModelSpec &spec, unsigned seed = 1) {
    std::mt19937 rng(seed);
    ModelFile m;
    m.shape.arch = spec.arch;
    m.shape.layers = spec.layers;
    m.shape.input_size = spec.input;
    m.shape.hidden_size = spec.hidden;
    m.shape.vocab_size = spec.vocab;
    m.shape.tied = spec.tied;
    m.shape.bias = spec.bias;
    m.shape.bidirectional = spec.bidirectional;
    m.shape.proj_size = spec.proj;
    const int64_t gh = int64_t(m.shape.gates() * spec.hidden);
    auto add_float = [&](const std::string &name, std::vector<int64_t> shape) {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        m.floats[name] = {shape, random_floats(rng, n)};
    };
    for (const std::string &name : weight_matrix_names(m.shape, true)) {
        const auto [rows, cols] = matrix_dims(m.shape, name);
        const bool lm_part = name == "embedding.weight" || name == "decoder.weight";
        if (spec.quantized && (!lm_part || spec.lm_quantized))
            m.quant[name] = random_quant(rng, spec.k_w, rows, cols);
        else
            add_float(name, {int64_t(rows), int64_t(cols)});
    }
    if (spec.bias)
        for (int l = 0; l < spec.layers; ++l)
            for (int d = 0; d < m.shape.directions(); ++d) {
                add_float(layer_tensor_name("bias_ih", l, d), {gh});
                add_float(layer_tensor_name("bias_hh", l, d), {gh});
            }
    if (spec.vocab) {
        add_float("decoder.bias", {int64_t(spec.vocab)});
        for (size_t i = 0; i < spec.vocab; ++i)
            m.vocab.push_back(i == 0 ? "<unk>" : i == 1 ? "caf\xc3\xa9" : "w" + std::to_string(i));
    }
    if (spec.quantized) {
        m.k_w = spec.k_w;
        m.k_a = 3;
        m.method = "alternating";
        m.iters = 2;
        m.act_method = "greedy";
        m.act_iters = 0;
    }
    m.metadata["perplexity_test"] = "123.4";
    return m;
}

bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void expect_same_model(const ModelFile &a, const ModelFile &b) {
    EXPECT_EQ(a.shape.arch, b.shape.arch);
    EXPECT_EQ(a.shape.layers, b.shape.layers);
    EXPECT_EQ(a.shape.input_size, b.shape.input_size);
    EXPECT_EQ(a.shape.hidden_size, b.shape.hidden_size);
    EXPECT_EQ(a.shape.vocab_size, b.shape.vocab_size);
    EXPECT_EQ(a.shape.tied, b.shape.tied);
    EXPECT_EQ(a.shape.bias, b.shape.bias);
    EXPECT_EQ(a.shape.bidirectional, b.shape.bidirectional);
    EXPECT_EQ(a.shape.proj_size, b.shape.proj_size);
    EXPECT_EQ(a.metadata, b.metadata);
    EXPECT_EQ(a.vocab, b.vocab);
    EXPECT_EQ(a.quantized(), b.quantized());
    if (a.quantized()) {
        EXPECT_EQ(a.k_w, b.k_w);
        EXPECT_EQ(a.k_a, b.k_a);
        EXPECT_EQ(a.iters, b.iters);
        EXPECT_EQ(a.act_iters, b.act_iters);
        EXPECT_EQ(a.method, b.method);
        EXPECT_EQ(a.act_method, b.act_method);
    }
    ASSERT_EQ(a.floats.size(), b.floats.size());
    for (const auto &[name, t] : a.floats) {
        ASSERT_TRUE(b.floats.count(name)) << name;
        EXPECT_EQ(t.shape, b.floats.at(name).shape) << name;
        EXPECT_TRUE(same_bits(t.data, b.floats.at(name).data)) << name;
    }
    ASSERT_EQ(a.quant.size(), b.quant.size());
    for (const auto &[name, q] : a.quant) {
        ASSERT_TRUE(b.quant.count(name)) << name;
        const QuantTensor &r = b.quant.at(name);
        EXPECT_EQ(q.k, r.k) << name;
        EXPECT_EQ(q.rows, r.rows) << name;
        EXPECT_EQ(q.cols, r.cols) << name;
        EXPECT_EQ(q.planes, r.planes) << name;
        EXPECT_TRUE(same_bits(q.alpha, r.alpha)) << name;
    }
}

// A model file taken apart to be broken on purpose: metadata and tensors as
// they are in the file, written back by st::Writer (which checks only the
// container rules).
struct RawTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
};

struct RawModel {
    std::map<std::string, std::string> meta;
    std::vector<RawTensor> tensors;

    explicit RawModel(const ModelFile &m) {
        const st::Reader r = st::Reader::from_bytes(model_writer(m).bytes(), "raw");
        meta = r.metadata();
        for (const st::TensorInfo &t : r.tensors())
            tensors.push_back({t.name, t.dtype, t.shape, as_bytes(r.data(t), t.nbytes())});
    }
    RawTensor &at(const std::string &name) {
        for (RawTensor &t : tensors)
            if (t.name == name) return t;
        throw std::logic_error("test: no tensor " + name);
    }
    void erase(const std::string &name) {
        const size_t before = tensors.size();
        tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                     [&](const RawTensor &t) { return t.name == name; }),
                      tensors.end());
        if (tensors.size() == before) throw std::logic_error("test: no tensor " + name);
    }
    std::vector<uint8_t> bytes() const {
        st::Writer w;
        for (const auto &[k, v] : meta) w.set_metadata(k, v);
        for (const RawTensor &t : tensors)
            w.add(t.name, t.dtype, t.shape, t.data.data(), t.data.size());
        return w.bytes();
    }
};

// `m` as a bare state_dict (no metadata) whose F32 matrix `name` is resized.
std::vector<uint8_t> plain_with_matrix(const ModelFile &m, const std::string &name, int64_t rows,
                                       int64_t cols) {
    RawModel plain(m);
    plain.meta.clear();
    RawTensor &t = plain.at(name);
    t.shape = {rows, cols};
    t.data.resize(size_t(rows * cols) * 4);
    return plain.bytes();
}

const ModelSpec kLstm2 = {Arch::lstm, 2, 37, 129, 0, false, true, false, 2, false};
const ModelSpec kLstm2Amq = {Arch::lstm, 2, 37, 129, 0, false, true, true, 2, false};

// ---------------------------------------------------------------------------
// Container: writer -> reader

TEST(Safetensors, DTypes) {
    const std::vector<std::pair<DType, size_t>> all = {
        {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::I64, 8},
        {DType::I32, 4}, {DType::I16, 2}, {DType::I8, 1},  {DType::U64, 8},  {DType::U32, 4},
        {DType::U16, 2}, {DType::U8, 1},  {DType::BOOL, 1}};
    for (const auto &[d, size] : all) {
        EXPECT_EQ(st::dtype_size(d), size) << st::dtype_name(d);
        EXPECT_EQ(st::parse_dtype(st::dtype_name(d)), d);
    }
    EXPECT_EQ(std::string(st::dtype_name(DType::BF16)), "BF16");
    EXPECT_FALSE(st::parse_dtype("f32"));
    EXPECT_FALSE(st::parse_dtype("F128"));
    EXPECT_FALSE(st::parse_dtype(""));
}

TEST(Safetensors, WriterReaderRoundTripIsBitExact) {
    const std::vector<float> f32 = {0.0f,
                                    -0.0f,
                                    1.5f,
                                    std::numeric_limits<float>::denorm_min(),
                                    std::numeric_limits<float>::infinity(),
                                    -std::numeric_limits<float>::max(),
                                    std::numeric_limits<float>::quiet_NaN()};
    const std::vector<uint64_t> u64 = {0, 1, ~0ull, 0x8000000000000001ull};
    const std::vector<int64_t> i64 = {-1, std::numeric_limits<int64_t>::min(), 42};
    const std::vector<uint8_t> u8 = {1, 2, 3};  // odd size: later tensors are unaligned
    const std::vector<uint16_t> f16 = {0x3c00, 0x7e00};
    const double scalar = -2.25;

    st::Writer w;
    w.set_metadata("format", "amq-float");
    w.set_metadata("empty", "");
    w.set_metadata("vocab", "a\nb\ncaf\xc3\xa9\n\"quoted\"\t\\");
    w.add("u8", DType::U8, {3}, u8.data(), u8.size());
    w.add("f32", DType::F32, {7}, f32.data(), f32.size() * 4);
    w.add("u64", DType::U64, {2, 2}, u64.data(), u64.size() * 8);
    w.add("empty", DType::F32, {0, 5}, nullptr, 0);
    w.add("i64", DType::I64, {3, 1}, i64.data(), i64.size() * 8);
    w.add("f16", DType::F16, {2}, f16.data(), 4);
    w.add("scalar", DType::F64, {}, &scalar, 8);

    const std::vector<uint8_t> bytes = w.bytes();
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    EXPECT_EQ(header_size % 8, 0u);
    EXPECT_EQ(bytes[8], '{');
    EXPECT_EQ(bytes.size(), 8 + header_size + 3 + 28 + 32 + 0 + 24 + 4 + 8);

    const st::Reader r = st::Reader::from_bytes(bytes, "rt");
    EXPECT_EQ(r.names(),
              (std::vector<std::string>{"u8", "f32", "u64", "empty", "i64", "f16", "scalar"}));
    EXPECT_EQ(r.meta("format"), "amq-float");
    EXPECT_EQ(r.meta("empty"), "");
    EXPECT_EQ(r.meta("vocab"), "a\nb\ncaf\xc3\xa9\n\"quoted\"\t\\");
    EXPECT_EQ(r.meta_or("absent", "dflt"), "dflt");
    EXPECT_EQ(r.metadata().size(), 3u);

    EXPECT_TRUE(same_bits(r.f32("f32", {7}), f32));
    EXPECT_EQ(r.u64("u64", {2, 2}), u64);
    EXPECT_EQ(r.i64("i64", {3, 1}), i64);
    EXPECT_TRUE(r.f32("empty", {0, 5}).empty());
    const st::TensorInfo &t8 = r.tensor("u8");
    EXPECT_EQ(t8.dtype, DType::U8);
    EXPECT_EQ(as_bytes(r.data(t8), t8.nbytes()), u8);
    const st::TensorInfo &th = r.tensor("f16");
    EXPECT_EQ(th.dtype, DType::F16);
    EXPECT_EQ(th.begin, 3u + 28 + 32 + 24);
    EXPECT_EQ(as_bytes(r.data(th), 4), as_bytes(f16.data(), 4));
    const st::TensorInfo &ts = r.tensor("scalar");
    EXPECT_TRUE(ts.shape.empty());
    EXPECT_EQ(ts.numel(), 1u);
    double back = 0;
    std::memcpy(&back, r.data(ts), 8);
    EXPECT_EQ(back, scalar);
    EXPECT_EQ(r.find("nope"), nullptr);
}

TEST(Safetensors, WriteIsAtomicAndReadable) {
    const auto dir = temp_dir("write");
    const std::string path = (dir / "m.safetensors").string();
    const std::vector<float> a = {1, 2, 3}, b = {4, 5};
    st::Writer w1;
    w1.add("a", DType::F32, {3}, a.data(), 12);
    w1.write(path);
    st::Writer w2;
    w2.set_metadata("k", "v");
    w2.add("b", DType::F32, {2}, b.data(), 8);
    w2.write(path);  // replaces the file
    const st::Reader r = st::Reader::open(path);
    EXPECT_EQ(r.names(), std::vector<std::string>{"b"});
    EXPECT_EQ(r.f32("b", {2}), b);
    EXPECT_EQ(r.label(), path);
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(on_disk, w2.bytes());
    // No temporary file is left behind.
    size_t files = 0;
    for (const auto &e : std::filesystem::directory_iterator(dir)) files += !e.is_directory();
    EXPECT_EQ(files, 1u);
    // A directory that does not exist: the error names the path.
    try {
        w2.write((dir / "no" / "such" / "m.safetensors").string());
        ADD_FAILURE() << "no error";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("no/such/m.safetensors"), std::string::npos)
            << e.what();
    }
    std::filesystem::remove_all(dir);
}

TEST(Safetensors, OpenErrorsNameThePath) {
    const auto dir = temp_dir("open");
    for (const std::string path : {(dir / "missing.amq").string(), dir.string()}) {
        try {
            st::Reader::open(path);
            ADD_FAILURE() << "no error for " << path;
        } catch (const FormatError &e) {
            ADD_FAILURE() << "not a format error: " << e.what();
        } catch (const std::runtime_error &e) {
            EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
        }
    }
    std::filesystem::remove_all(dir);
}

TEST(Safetensors, WriterRefusesBadTensors) {
    st::Writer w;
    const std::vector<float> v(6);
    EXPECT_THROW(w.add("a", DType::F32, {2, 3}, v.data(), 20), std::invalid_argument);
    EXPECT_THROW(w.add("a", DType::F32, {-2, -3}, v.data(), 24), std::invalid_argument);
    EXPECT_THROW(w.add("a", DType::F32, {1ll << 40, 1ll << 40}, v.data(), 24),
                 std::invalid_argument);
    EXPECT_THROW(w.add("__metadata__", DType::F32, {6}, v.data(), 24), std::invalid_argument);
    EXPECT_THROW(w.add("a", DType::F32, {6}, nullptr, 24), std::invalid_argument);
    w.add("a", DType::F32, {6}, v.data(), 24);
    try {
        w.add("a", DType::F32, {6}, v.data(), 24);
        ADD_FAILURE() << "duplicate accepted";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("tensor 'a'"), std::string::npos) << e.what();
    }
    EXPECT_THROW(w.set_metadata("k", "\xff\xfe"), std::invalid_argument);
}

TEST(Safetensors, TypedAccessorsCheckDtypeAndShape) {
    const std::vector<float> v(6);
    st::Writer w;
    w.add("w", DType::F32, {2, 3}, v.data(), 24);
    const st::Reader r = st::Reader::from_bytes(w.bytes(), kLabel);
    EXPECT_MESSAGE(format_error([&] {
                       r.u64("w", {2, 3});
                   }),
                   "tensor 'w'", "dtype F32", "expected U64");
    EXPECT_MESSAGE(format_error([&] {
                       r.f32("w", {3, 2});
                   }),
                   "tensor 'w'", "shape [2, 3]", "expected [3, 2]");
    EXPECT_MESSAGE(format_error([&] { r.f32("x", {2, 3}); }), "tensor 'x'", "missing");
    EXPECT_MESSAGE(format_error([&] { r.tensor("x"); }), "tensor 'x'", "missing");
    EXPECT_MESSAGE(format_error([&] { r.meta("k"); }), "metadata 'k'", "missing");
}

// ---------------------------------------------------------------------------
// Container: malformed files

TEST(SafetensorsMalformed, TruncatedFile) {
    const std::vector<float> a(4, 1.0f), b(5, 2.0f);
    st::Writer w;
    w.add("a", DType::F32, {4}, a.data(), 16);
    w.add("b", DType::F32, {5}, b.data(), 20);
    const std::vector<uint8_t> full = w.bytes();
    uint64_t n = 0;
    std::memcpy(&n, full.data(), 8);
    auto cut = [&](size_t size) {
        return reader_error(std::vector<uint8_t>(full.begin(), full.begin() + size));
    };
    EXPECT_MESSAGE(cut(0), "file is 0 bytes, too short for the 8-byte header size");
    EXPECT_MESSAGE(cut(5), "file is 5 bytes, too short");
    EXPECT_MESSAGE(cut(8), "header size " + std::to_string(n) + " runs past the end of the file");
    EXPECT_MESSAGE(cut(8 + n / 2), "header size", "runs past the end of the file");
    EXPECT_MESSAGE(cut(8 + n), "tensor 'a'", "end past the data section (0 bytes)");
    EXPECT_MESSAGE(cut(8 + n + 20), "tensor 'b'", "data_offsets [16, 36] end past", "(20 bytes)");
    EXPECT_MESSAGE(cut(full.size() - 1), "tensor 'b'", "(35 bytes)");
    // Every cut point fails cleanly.
    for (size_t size = 0; size < full.size(); ++size) EXPECT_FALSE(cut(size).empty()) << size;
    EXPECT_NO_THROW(st::Reader::from_bytes(full, kLabel));
}

TEST(SafetensorsMalformed, HeaderSize) {
    EXPECT_MESSAGE(reader_error(raw_file("{}", {}, 1000)),
                   "header size 1000 runs past the end of the file (2 bytes after the size field)");
    EXPECT_MESSAGE(reader_error(raw_file("{}", {}, 100'000'001)),
                   "header size 100000001 is over the limit of 100000000 bytes");
    EXPECT_MESSAGE(reader_error(raw_file("{}", {}, ~0ull)), "is over the limit");
    EXPECT_NO_THROW(st::Reader::from_bytes(raw_file("{}"), kLabel));
    EXPECT_NO_THROW(st::Reader::from_bytes(raw_file("  {}    "), kLabel));
}

TEST(SafetensorsMalformed, HeaderNotJson) {
    EXPECT_MESSAGE(reader_error(raw_file("{\"a\": ")), "header is not valid JSON");
    EXPECT_MESSAGE(reader_error(raw_file("")), "header is not valid JSON");
    EXPECT_MESSAGE(reader_error(raw_file("{} {}")), "header is not valid JSON");
    EXPECT_MESSAGE(reader_error(raw_file(std::string("{\0}", 3))),
                   "header byte at file offset 9 is NUL (0x00)");
    EXPECT_MESSAGE(reader_error(raw_file("{\"\xff\": 1}")), "header is not valid JSON");
}

// safetensors pads the header with spaces: NUL bytes (which a JSON parser may
// take for the end of its input), tabs or newlines after the object are refused,
// with the file and the offset of the first such byte.
TEST(SafetensorsMalformed, HeaderPaddingOnlySpaces) {
    EXPECT_MESSAGE(reader_error(raw_file(std::string("{}\0\0\0\0\0\0", 8))),
                   "header byte at file offset 10 is NUL (0x00)", "only by spaces (0x20)");
    EXPECT_MESSAGE(reader_error(raw_file(std::string("{}  \0   ", 8))),
                   "header byte at file offset 12 is NUL");
    EXPECT_MESSAGE(reader_error(raw_file("{}\t     ")),
                   "header byte at file offset 10 is 0x09 after the JSON object",
                   "only spaces (0x20) may follow it");
    EXPECT_MESSAGE(reader_error(raw_file("{}  \n")), "file offset 12 is 0x0a after the JSON");
    EXPECT_MESSAGE(reader_error(raw_file("{}\r")), "is 0x0d after the JSON object");
    EXPECT_NO_THROW(st::Reader::from_bytes(raw_file("{}      "), kLabel));
    EXPECT_NO_THROW(st::Reader::from_bytes(raw_file("\n{\n}  "), kLabel));  // inside: JSON

    // A real model whose header padding is NULs instead of spaces: refused by
    // the loader, the streaming header reader and the model loader, each naming
    // the file.
    ModelFile m = make_model(kLstm2);
    std::vector<uint8_t> bytes;
    uint64_t n = 0;
    size_t first_pad = 0;
    for (size_t extra = 0; extra < 8; ++extra) {  // a metadata value that makes padding
        m.metadata["note"] = std::string(extra, 'x');
        bytes = model_writer(m).bytes();
        std::memcpy(&n, bytes.data(), 8);
        for (first_pad = 8 + n; bytes[first_pad - 1] == ' ';) --first_pad;
        if (8 + n - first_pad >= 3) break;
    }
    ASSERT_LE(first_pad + 3, 8 + n) << "no header with padding";
    for (size_t i = first_pad; i < 8 + n; ++i) bytes[i] = 0;
    const std::string at = "header byte at file offset " + std::to_string(first_pad) + " is NUL";
    EXPECT_MESSAGE(model_error(bytes), at);
    const auto dir = temp_dir("nul_padding");
    const std::string path = (dir / "nul.safetensors").string();
    {
        std::ofstream f(path, std::ios::binary);
        f.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
    }
    for (auto open : {+[](const std::string &p) { st::Reader::open(p); },
                      +[](const std::string &p) { st::read_header(p); },
                      +[](const std::string &p) { load_model(p); }}) {
        const std::string m = format_error([&] { open(path); });
        EXPECT_EQ(m.rfind(path + ": " + at, 0), 0u) << m;
    }
    std::filesystem::remove_all(dir);
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
    EXPECT_MESSAGE(reader_error(raw_file("[1, 2]")), "header is an array, expected a JSON object");
    EXPECT_MESSAGE(reader_error(raw_file("42")), "header is a number, expected a JSON object");
    EXPECT_MESSAGE(reader_error(raw_file("\"x\"")), "header is a string");
    EXPECT_MESSAGE(reader_error(raw_file("{\"w\": 3}")), "tensor 'w': entry is a number");
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": [\"a\"]}")),
                   "__metadata__ is an array, expected an object of strings");
}

std::string entry(const std::string &name, const std::string &dtype, const std::string &shape,
                  const std::string &offsets) {
    return "\"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape +
           ", \"data_offsets\": " + offsets + "}";
}

TEST(SafetensorsMalformed, UnknownDtype) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "F128", "[1]", "[0, 4]") + "}",
                                         std::vector<uint8_t>(4))),
                   "tensor 'w': unknown dtype 'F128'");
    EXPECT_MESSAGE(reader_error(raw_file("{\"w\": {\"dtype\": 4, \"shape\": [1], "
                                         "\"data_offsets\": [0, 4]}}",
                                         std::vector<uint8_t>(4))),
                   "tensor 'w': dtype is a number, expected a string");
}

TEST(SafetensorsMalformed, NegativeShape) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "F32", "[2, -1]", "[0, 0]") + "}")),
                   "tensor 'w': shape has a negative size -1");
}

TEST(SafetensorsMalformed, OverflowingShape) {
    // The product of the sizes times 4 bytes does not fit in 64 bits.
    EXPECT_MESSAGE(
        reader_error(raw_file("{" + entry("w", "F32", "[4294967296, 4294967296]", "[0, 4]") + "}",
                              std::vector<uint8_t>(4))),
        "tensor 'w': shape [4294967296, 4294967296] of F32 has more bytes than fit");
    // A product that wraps around to exactly the given size (2^64 -> 0) is caught too.
    EXPECT_MESSAGE(
        reader_error(raw_file("{" + entry("w", "U8", "[4294967296, 4294967296]", "[0, 0]") + "}")),
        "tensor 'w'", "more bytes than fit");
    EXPECT_MESSAGE(
        reader_error(raw_file("{" + entry("w", "U8", "[9223372036854775808]", "[0, 0]") + "}")),
        "tensor 'w': shape size 9223372036854775808 is too large");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[1e30]", "[0, 0]") + "}")),
                   "tensor 'w': shape holds 1e30, expected non-negative integers");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[2.0]", "[0, 2]") + "}",
                                         std::vector<uint8_t>(2))),
                   "tensor 'w': shape holds 2.0");
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
    EXPECT_MESSAGE(
        reader_error(raw_file("{" + entry("a", "U8", "[16]", "[0, 16]") + ", " +
                                  entry("weight_hh_l0.planes", "U64", "[1123]", "[16, 9000]") + "}",
                              std::vector<uint8_t>(8192))),
        "bad.safetensors: tensor 'weight_hh_l0.planes': data_offsets [16, 9000] end past the "
        "data section (8192 bytes)");
    EXPECT_MESSAGE(
        reader_error(raw_file(
            "{" + entry("w", "U8", "[1]", "[18446744073709551615, 18446744073709551615]") + "}")),
        "tensor 'w'", "end past the data section (0 bytes)");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[1]", "[-1, 0]") + "}")),
                   "tensor 'w': data_offsets has a negative offset -1");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[1]", "[0, 1, 2]") + "}")),
                   "tensor 'w': data_offsets has more than 2 values");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[1]", "[0]") + "}")),
                   "tensor 'w': data_offsets has 1 values, expected [begin, end]");
}

TEST(SafetensorsMalformed, OffsetsReversed) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[4]", "[4, 0]") + "}",
                                         std::vector<uint8_t>(4))),
                   "tensor 'w': data_offsets [4, 0] are reversed");
}

TEST(SafetensorsMalformed, OverlappingTensors) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("a", "U8", "[8]", "[0, 8]") + ", " +
                                             entry("b", "U8", "[8]", "[4, 12]") + "}",
                                         std::vector<uint8_t>(12))),
                   "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
    // The same range twice.
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("a", "U8", "[8]", "[0, 8]") + ", " +
                                             entry("b", "U8", "[8]", "[0, 8]") + "}",
                                         std::vector<uint8_t>(8))),
                   "tensor 'b': data_offsets [0, 8] overlap tensor 'a' [0, 8]");
}

TEST(SafetensorsMalformed, HoleInTheData) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("a", "U8", "[4]", "[0, 4]") + ", " +
                                             entry("b", "U8", "[4]", "[8, 12]") + "}",
                                         std::vector<uint8_t>(12))),
                   "tensor 'b': data_offsets [8, 12] leave a hole of 4 bytes after tensor 'a'",
                   "contiguous");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("a", "U8", "[4]", "[2, 6]") + "}",
                                         std::vector<uint8_t>(6))),
                   "tensor 'a': data_offsets [2, 6] leave a hole of 2 bytes at the start");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("a", "U8", "[4]", "[0, 4]") + "}",
                                         std::vector<uint8_t>(7))),
                   "the data section has 7 bytes but the tensors cover only 4");
    EXPECT_MESSAGE(reader_error(raw_file("{}", std::vector<uint8_t>(8))),
                   "the data section has 8 bytes but the tensors cover only 0");
}

TEST(SafetensorsMalformed, SizeNotMatchingShape) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "F32", "[3]", "[0, 8]") + "}",
                                         std::vector<uint8_t>(8))),
                   "tensor 'w': data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12");
}

TEST(SafetensorsMalformed, DuplicateNames) {
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[4]", "[0, 4]") + ", " +
                                             entry("w", "U8", "[4]", "[4, 8]") + "}",
                                         std::vector<uint8_t>(8))),
                   "tensor 'w': duplicate tensor name");
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}")),
                   "metadata 'k': duplicate key");
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": {}, \"__metadata__\": {}}")),
                   "header has __metadata__ twice");
    EXPECT_MESSAGE(reader_error(raw_file("{\"w\": {\"dtype\": \"U8\", \"dtype\": \"U8\", "
                                         "\"shape\": [0], \"data_offsets\": [0, 0]}}")),
                   "tensor 'w': duplicate field 'dtype'");
}

TEST(SafetensorsMalformed, MetadataValueNotAString) {
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": {\"layers\": 2}}")),
                   "metadata 'layers': value is a number, expected a string");
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": {\"a\": \"x\", \"b\": {\"c\": 1}}}")),
                   "metadata 'b': value is an object, expected a string");
    EXPECT_MESSAGE(reader_error(raw_file("{\"__metadata__\": {\"a\": null}}")),
                   "metadata 'a': value is null");
}

TEST(SafetensorsMalformed, EntryFields) {
    EXPECT_MESSAGE(reader_error(raw_file("{\"w\": {\"dtype\": \"U8\", \"shape\": [0]}}")),
                   "tensor 'w': missing 'data_offsets'");
    EXPECT_MESSAGE(reader_error(raw_file("{\"w\": {\"shape\": [0], \"data_offsets\": [0, 0]}}")),
                   "tensor 'w': missing 'dtype'");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "4", "[0, 4]") + "}",
                                         std::vector<uint8_t>(4))),
                   "tensor 'w': shape is a number, expected an array");
    EXPECT_MESSAGE(reader_error(raw_file("{" + entry("w", "U8", "[[4]]", "[0, 4]") + "}",
                                         std::vector<uint8_t>(4))),
                   "tensor 'w': shape holds an array");
    // Fields outside the format are skipped, whatever their value.
    const st::Reader r = st::Reader::from_bytes(
        raw_file(
            "{\"w\": {\"extra\": {\"x\": [1, {\"y\": null}], \"z\": \"s\"}, \"dtype\": \"U8\", "
            "\"more\": 3, \"shape\": [2], \"data_offsets\": [0, 2]}}",
            {7, 9}),
        kLabel);
    EXPECT_EQ(as_bytes(r.data(r.tensor("w")), 2), (std::vector<uint8_t>{7, 9}));
}

// ---------------------------------------------------------------------------
// ModelFile: round trips

struct RoundTripCase {
    const char *label;
    ModelSpec spec;
};

class ModelRoundTrip : public testing::TestWithParam<RoundTripCase> {};

TEST_P(ModelRoundTrip, SaveLoadIsExact) {
    const ModelSpec &spec = GetParam().spec;
    const ModelFile m = make_model(spec);
    EXPECT_EQ(m.quantized(), spec.quantized);
    const auto dir = temp_dir(GetParam().label);
    const std::string path = (dir / (spec.quantized ? "m.amq" : "m.safetensors")).string();
    save_model(path, m);
    const ModelFile back = load_model(path);
    expect_same_model(m, back);

    const st::Reader r = st::Reader::open(path);
    EXPECT_EQ(r.meta("format"), spec.quantized ? "amq" : "amq-float");
    EXPECT_EQ(r.meta("format_version"), "1");
    EXPECT_EQ(r.meta("arch"), spec.arch == Arch::lstm ? "lstm" : "gru");
    EXPECT_EQ(r.meta("hidden_size"), std::to_string(spec.hidden));
    if (spec.quantized) {
        EXPECT_EQ(r.meta("k_w"), std::to_string(spec.k_w));
        const st::TensorInfo &p = r.tensor("weight_hh_l1.planes");
        EXPECT_EQ(p.dtype, DType::U64);
        const int64_t g = spec.arch == Arch::lstm ? 4 : 3;
        EXPECT_EQ(p.shape, (std::vector<int64_t>{spec.k_w, g * int64_t(spec.hidden),
                                                 int64_t((spec.hidden + 63) / 64)}));
        EXPECT_EQ(r.tensor("weight_ih_l0.alpha").shape,
                  (std::vector<int64_t>{g * int64_t(spec.hidden), spec.k_w}));
        EXPECT_EQ(r.find("weight_hh_l1"), nullptr);
    }
    EXPECT_EQ(r.has_meta("bidirectional"), spec.bidirectional);
    EXPECT_EQ(r.has_meta("proj_size"), spec.proj > 0);
    if (spec.proj) {
        EXPECT_EQ(r.meta("proj_size"), std::to_string(spec.proj));
        const std::string hr = spec.quantized ? "weight_hr_l0.alpha" : "weight_hr_l0";
        EXPECT_EQ(r.tensor(hr).shape[0], int64_t(spec.proj));
    }
    if (spec.bidirectional)
        EXPECT_NE(r.find(spec.quantized ? "weight_hh_l1_reverse.planes" : "weight_hh_l1_reverse"),
                  nullptr);
    // Saving what was loaded gives the same bytes.
    EXPECT_EQ(model_writer(back).bytes(), model_writer(m).bytes());
    std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    All, ModelRoundTrip,
    testing::Values(
        RoundTripCase{"lstm_float", {Arch::lstm, 2, 37, 129, 0, false, true, false, 2, false}},
        RoundTripCase{"gru_float", {Arch::gru, 2, 37, 129, 0, false, true, false, 2, false}},
        RoundTripCase{"lstm_float_nobias",
                      {Arch::lstm, 2, 37, 129, 0, false, false, false, 2, false}},
        RoundTripCase{"gru_float_nobias",
                      {Arch::gru, 2, 37, 129, 0, false, false, false, 2, false}},
        RoundTripCase{"lstm_amq", {Arch::lstm, 2, 37, 129, 0, false, true, true, 2, false}},
        RoundTripCase{"gru_amq", {Arch::gru, 2, 37, 129, 0, false, true, true, 3, false}},
        RoundTripCase{"lstm_amq_nobias_k1",
                      {Arch::lstm, 2, 37, 129, 0, false, false, true, 1, false}},
        RoundTripCase{"gru_amq_nobias_k4",
                      {Arch::gru, 2, 64, 128, 0, false, false, true, 4, false}},
        RoundTripCase{"lstm_lm_untied_float",
                      {Arch::lstm, 2, 37, 129, 50, false, true, false, 2, false}},
        RoundTripCase{"gru_lm_tied_float",
                      {Arch::gru, 2, 129, 129, 50, true, true, false, 2, false}},
        RoundTripCase{"lstm_lm_untied_amq",
                      {Arch::lstm, 2, 37, 129, 50, false, true, true, 2, false}},
        RoundTripCase{"lstm_lm_untied_amq_lmq",
                      {Arch::lstm, 2, 37, 129, 50, false, true, true, 2, true}},
        RoundTripCase{"gru_lm_tied_amq_lmq",
                      {Arch::gru, 2, 65, 65, 50, true, false, true, 3, true}},
        RoundTripCase{"lstm_lm_tied_amq",
                      {Arch::lstm, 2, 129, 129, 7, true, true, true, 2, false}},
        RoundTripCase{"lstm_bi_proj_float",
                      {Arch::lstm, 2, 13, 21, 0, false, true, false, 2, false, true, 11}},
        RoundTripCase{"gru_bi_float", {Arch::gru, 3, 13, 21, 0, false, true, false, 2, false, true}},
        RoundTripCase{"lstm_bi_proj_amq",
                      {Arch::lstm, 2, 13, 21, 0, false, false, true, 3, false, true, 11}},
        RoundTripCase{"gru_bi_amq", {Arch::gru, 2, 70, 65, 0, false, true, true, 2, false, true}},
        RoundTripCase{"lstm_proj_lm_tied_amq",
                      {Arch::lstm, 2, 11, 21, 9, true, true, true, 2, true, false, 11}}),
    [](const testing::TestParamInfo<RoundTripCase> &info) { return info.param.label; });

TEST(ModelFile, MixedLmPartsInAmq) {
    // Embedding quantized, decoder float.
    ModelSpec spec = kLstm2Amq;
    spec.vocab = 20;
    ModelFile m = make_model(spec);
    std::mt19937 rng(7);
    m.floats.erase("embedding.weight");
    m.quant["embedding.weight"] = random_quant(rng, spec.k_w, 20, spec.input);
    const ModelFile back = load_model_from_bytes(model_writer(m).bytes(), "mixed");
    expect_same_model(m, back);
    EXPECT_TRUE(back.floats.count("decoder.weight"));
}

TEST(ModelFile, PlainStateDictDerivesTheShape) {
    for (Arch arch : {Arch::lstm, Arch::gru})
        for (bool lm : {false, true})
            for (bool tied : {false, true}) {
                if (tied && !lm) continue;
                ModelSpec spec = kLstm2;
                spec.arch = arch;
                spec.layers = 3;
                spec.vocab = lm ? 11 : 0;
                spec.tied = tied;
                if (tied) spec.input = spec.hidden;
                const ModelFile m = make_model(spec);
                RawModel raw(m);
                raw.meta.clear();  // a bare state_dict
                ModelFile back = load_model_from_bytes(raw.bytes(), "plain");
                EXPECT_EQ(back.shape.arch, arch);
                EXPECT_EQ(back.shape.layers, 3);
                EXPECT_EQ(back.shape.input_size, spec.input);
                EXPECT_EQ(back.shape.hidden_size, spec.hidden);
                EXPECT_EQ(back.shape.vocab_size, spec.vocab);
                EXPECT_EQ(back.shape.tied, tied);
                EXPECT_TRUE(back.vocab.empty());  // an LM without vocab metadata
                EXPECT_TRUE(back.metadata.empty());
                for (const auto &[name, t] : m.floats)
                    EXPECT_TRUE(same_bits(t.data, back.floats.at(name).data)) << name;
                // PyTorch tools' format "pt" is a plain state_dict too.
                raw.meta["format"] = "pt";
                EXPECT_EQ(load_model_from_bytes(raw.bytes(), "pt").shape.layers, 3);
            }
    // Bidirectional and projected: from weight_ih_l0_reverse and weight_hr_l0.
    for (const ModelSpec &spec :
         {ModelSpec{Arch::lstm, 2, 13, 21, 0, false, true, false, 2, false, true, 11},
          ModelSpec{Arch::lstm, 3, 13, 21, 0, false, false, false, 2, false, false, 20},
          ModelSpec{Arch::gru, 2, 13, 21, 0, false, true, false, 2, false, true, 0}}) {
        const ModelFile m = make_model(spec);
        RawModel raw(m);
        raw.meta.clear();
        const ModelFile back = load_model_from_bytes(raw.bytes(), "plain");
        EXPECT_EQ(back.shape.arch, spec.arch);
        EXPECT_EQ(back.shape.layers, spec.layers);
        EXPECT_EQ(back.shape.input_size, spec.input);
        EXPECT_EQ(back.shape.hidden_size, spec.hidden);
        EXPECT_EQ(back.shape.bidirectional, spec.bidirectional);
        EXPECT_EQ(back.shape.proj_size, spec.proj);
        EXPECT_EQ(back.shape.bias, spec.bias);
        EXPECT_EQ(back.floats.size(), m.floats.size());
    }
}

TEST(ModelFile, Names) {
    RnnShape s;
    s.arch = Arch::gru;
    s.layers = 2;
    s.input_size = 37;
    s.hidden_size = 129;
    EXPECT_EQ(rnn_matrix_names(s), (std::vector<std::string>{"weight_ih_l0", "weight_hh_l0",
                                                             "weight_ih_l1", "weight_hh_l1"}));
    EXPECT_EQ(weight_matrix_names(s, true), rnn_matrix_names(s));
    EXPECT_EQ(matrix_dims(s, "weight_ih_l0"), std::make_pair(size_t(387), size_t(37)));
    EXPECT_EQ(matrix_dims(s, "weight_ih_l1"), std::make_pair(size_t(387), size_t(129)));
    EXPECT_EQ(matrix_dims(s, "weight_hh_l0"), std::make_pair(size_t(387), size_t(129)));
    for (const char *bad : {"weight_ih_l2", "weight_ih_l01", "weight_ih_l", "weight_ih_l1x",
                            "bias_ih_l0", "embedding.weight", "weight_hh_l-1"})
        EXPECT_THROW(matrix_dims(s, bad), std::invalid_argument) << bad;
    s.vocab_size = 50;
    EXPECT_EQ(weight_matrix_names(s, true).size(), 6u);
    EXPECT_EQ(weight_matrix_names(s, false).size(), 4u);
    EXPECT_EQ(matrix_dims(s, "embedding.weight"), std::make_pair(size_t(50), size_t(37)));
    EXPECT_EQ(matrix_dims(s, "decoder.weight"), std::make_pair(size_t(50), size_t(129)));
    s.tied = true;
    EXPECT_EQ(weight_matrix_names(s, true).back(), "embedding.weight");
    EXPECT_THROW(matrix_dims(s, "decoder.weight"), std::invalid_argument);
    s.arch = Arch::lstm;
    EXPECT_EQ(s.gates(), 4);
    EXPECT_EQ(matrix_dims(s, "weight_hh_l1"), std::make_pair(size_t(516), size_t(129)));

    // Bidirectional with projections: PyTorch's order and shapes.
    RnnShape p;
    p.arch = Arch::lstm;
    p.layers = 2;
    p.input_size = 13;
    p.hidden_size = 21;
    p.proj_size = 11;
    p.bidirectional = true;
    EXPECT_EQ(p.h_size(), 11u);
    EXPECT_EQ(p.output_size(), 22u);
    EXPECT_EQ(p.layer_input(1), 22u);
    const std::vector<MatrixInfo> ms = weight_matrices(p, true);
    std::vector<std::string> names;
    for (const MatrixInfo &m : ms) names.push_back(m.name);
    EXPECT_EQ(names, (std::vector<std::string>{
                         "weight_ih_l0", "weight_hh_l0", "weight_hr_l0", "weight_ih_l0_reverse",
                         "weight_hh_l0_reverse", "weight_hr_l0_reverse", "weight_ih_l1",
                         "weight_hh_l1", "weight_hr_l1", "weight_ih_l1_reverse",
                         "weight_hh_l1_reverse", "weight_hr_l1_reverse"}));
    EXPECT_EQ(names, rnn_matrix_names(p));
    EXPECT_EQ(ms[2].role, MatrixRole::projection);
    EXPECT_EQ(ms[4].direction, 1);
    EXPECT_EQ(ms[7].layer, 1);
    EXPECT_EQ(matrix_dims(p, "weight_ih_l0_reverse"), std::make_pair(size_t(84), size_t(13)));
    EXPECT_EQ(matrix_dims(p, "weight_hh_l0"), std::make_pair(size_t(84), size_t(11)));
    EXPECT_EQ(matrix_dims(p, "weight_hr_l1_reverse"), std::make_pair(size_t(11), size_t(21)));
    EXPECT_EQ(matrix_dims(p, "weight_ih_l1"), std::make_pair(size_t(84), size_t(22)));
    for (const char *bad : {"weight_hr_l2", "weight_ih_l0_reversed", "weight_hr_l0_reverse_"})
        EXPECT_THROW(matrix_dims(p, bad), std::invalid_argument) << bad;
    p.bidirectional = false;
    p.proj_size = 0;
    EXPECT_THROW(matrix_dims(p, "weight_hr_l0"), std::invalid_argument);
    EXPECT_THROW(matrix_dims(p, "weight_ih_l0_reverse"), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// ModelFile: malformed files

TEST(ModelMalformed, TruncatedModelFile) {
    ModelSpec spec = kLstm2Amq;
    spec.layers = 1;
    spec.input = 5;
    spec.hidden = 3;
    const std::vector<uint8_t> full = model_writer(make_model(spec)).bytes();
    for (size_t size = 0; size < full.size(); ++size)
        EXPECT_FALSE(model_error(std::vector<uint8_t>(full.begin(), full.begin() + size)).empty())
            << size;
    EXPECT_NO_THROW(load_model_from_bytes(full, kLabel));
}

TEST(ModelMalformed, MissingTensor) {
    RawModel raw(make_model(kLstm2));
    raw.erase("weight_hh_l1");
    EXPECT_MESSAGE(model_error(raw.bytes()), "tensor 'weight_hh_l1': missing",
                   "2-layer lstm (input 37, hidden 129");
    RawModel bias(make_model(kLstm2));
    bias.erase("bias_hh_l1");
    EXPECT_MESSAGE(model_error(bias.bytes()), "tensor 'bias_hh_l1': missing (biases come in pairs");
    RawModel amq(make_model(kLstm2Amq));
    amq.erase("weight_ih_l1.alpha");
    EXPECT_MESSAGE(model_error(amq.bytes()), "tensor 'weight_ih_l1.alpha': missing");
    RawModel amq_planes(make_model(kLstm2Amq));
    amq_planes.erase("weight_hh_l0.planes");
    EXPECT_MESSAGE(model_error(amq_planes.bytes()), "tensor 'weight_hh_l0.planes': missing");
    ModelSpec lm = kLstm2;
    lm.vocab = 9;
    RawModel dec(make_model(lm));
    dec.erase("decoder.weight");  // metadata still says tied = false
    EXPECT_MESSAGE(model_error(dec.bytes()), "tensor 'decoder.weight': missing");
}

TEST(ModelMalformed, WrongShapeForTheArch) {
    // Layer 1 takes the hidden state (129 wide), not the input (37).
    RawModel raw(make_model(kLstm2));
    RawTensor &t = raw.at("weight_ih_l1");
    t.shape = {516, 37};
    t.data.resize(516 * 37 * 4);
    EXPECT_MESSAGE(model_error(raw.bytes()), "tensor 'weight_ih_l1': shape [516, 37]",
                   "expected [516, 129]");
    // GRU rows in a file that says lstm.
    RawModel gru(make_model(kLstm2));
    gru.meta["arch"] = "gru";
    EXPECT_MESSAGE(model_error(gru.bytes()), "tensor 'weight_ih_l0': shape [516, 37]",
                   "expected [387, 37]");
    // Planes for the wrong number of bits.
    RawModel amq(make_model(kLstm2Amq));
    amq.meta["k_w"] = "3";
    EXPECT_MESSAGE(model_error(amq.bytes()), "tensor 'weight_ih_l0.planes': shape [2, 516, 1]",
                   "expected [3, 516, 1]");
    // Plain state_dict whose recurrent matrix is neither LSTM nor GRU.
    EXPECT_MESSAGE(model_error(plain_with_matrix(make_model(kLstm2), "weight_hh_l0", 500, 129)),
                   "tensor 'weight_hh_l0': shape [500, 129] is neither");
}

TEST(ModelMalformed, WrongDtype) {
    RawModel raw(make_model(kLstm2));
    RawTensor &b = raw.at("bias_ih_l0");
    b.dtype = DType::I32;
    EXPECT_MESSAGE(model_error(raw.bytes()), "tensor 'bias_ih_l0': dtype I32, expected F32");
    RawModel amq(make_model(kLstm2Amq));
    amq.at("weight_hh_l0.planes").dtype = DType::I64;
    EXPECT_MESSAGE(model_error(amq.bytes()), "tensor 'weight_hh_l0.planes': dtype I64",
                   "expected U64");
}

TEST(ModelMalformed, PaddingBitsSet) {
    RawModel raw(make_model(kLstm2Amq));
    // weight_hh_l0: 129 columns -> 3 words, bits 1..63 of the last word are padding.
    RawTensor &p = raw.at("weight_hh_l0.planes");
    const size_t words = 3, rows = 516;
    const size_t index = (1 * rows + 7) * words + 2;  // plane 1, row 7, last word
    p.data[index * 8 + 7] |= 0x80;                    // bit 63
    EXPECT_MESSAGE(model_error(raw.bytes()),
                   "tensor 'weight_hh_l0.planes': padding bits set in plane 1, row 7",
                   "past column 128");
    // Column 128 itself (bit 0 of the last word) is data, not padding.
    RawModel ok(make_model(kLstm2Amq));
    ok.at("weight_hh_l0.planes").data[index * 8] |= 1;
    EXPECT_NO_THROW(load_model_from_bytes(ok.bytes(), kLabel));
}

TEST(ModelMalformed, NonFiniteAlpha) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
        RawModel raw(make_model(kLstm2Amq));
        RawTensor &a = raw.at("weight_ih_l1.alpha");
        std::memcpy(a.data.data() + (10 * 2 + 1) * 4, &bad, 4);  // row 10, plane 1
        EXPECT_MESSAGE(model_error(raw.bytes()),
                       "tensor 'weight_ih_l1.alpha': alpha[10, 1] = ", "is not finite");
    }
}

TEST(ModelMalformed, BitsOutOfRange) {
    for (const char *k : {"5", "0"}) {
        RawModel raw(make_model(kLstm2Amq));
        raw.meta["k_w"] = k;
        EXPECT_MESSAGE(model_error(raw.bytes()),
                       std::string("metadata 'k_w': ") + k + " is out of range (1..4)");
    }
    RawModel raw(make_model(kLstm2Amq));
    raw.meta["k_a"] = "7";
    EXPECT_MESSAGE(model_error(raw.bytes()), "metadata 'k_a': 7 is out of range (1..4)");
}

TEST(ModelMalformed, BadIntegerMetadata) {
    for (const char *v :
         {"12abc", "", "-3", "+3", " 12", "12 ", "0x10", "1.5", "99999999999999999999"}) {
        RawModel raw(make_model(kLstm2));
        raw.meta["hidden_size"] = v;
        EXPECT_MESSAGE(model_error(raw.bytes()), "metadata 'hidden_size': '" + std::string(v) +
                                                     "' is not a non-negative integer");
    }
    RawModel zero(make_model(kLstm2));
    zero.meta["layers"] = "0";
    EXPECT_MESSAGE(model_error(zero.bytes()), "metadata 'layers': 0 is out of range");
    RawModel huge(make_model(kLstm2));
    huge.meta["layers"] = "2000000000";
    EXPECT_MESSAGE(model_error(huge.bytes()), "metadata 'layers': 2000000000 layers need at least");
    RawModel big(make_model(kLstm2));
    big.meta["input_size"] = "4294967296";
    EXPECT_MESSAGE(model_error(big.bytes()), "metadata 'input_size': 4294967296 is out of range");
    RawModel tied(make_model(kLstm2));
    tied.meta["tied"] = "true";
    EXPECT_MESSAGE(model_error(tied.bytes()), "metadata 'tied': true in a model without");
    ModelSpec lm = kLstm2;
    lm.vocab = 5;
    RawModel tied_lm(make_model(lm));
    tied_lm.meta["tied"] = "yes";
    EXPECT_MESSAGE(model_error(tied_lm.bytes()),
                   "metadata 'tied': 'yes', expected 'true' or 'false'");
}

TEST(ModelMalformed, OtherMetadata) {
    RawModel arch(make_model(kLstm2));
    arch.meta["arch"] = "rnn";
    EXPECT_MESSAGE(model_error(arch.bytes()), "metadata 'arch': 'rnn', expected one of lstm, gru");
    RawModel format(make_model(kLstm2));
    format.meta["format"] = "onnx";
    EXPECT_MESSAGE(model_error(format.bytes()), "metadata 'format': 'onnx'");
    RawModel method(make_model(kLstm2Amq));
    method.meta["method"] = "magic";
    EXPECT_MESSAGE(model_error(method.bytes()), "metadata 'method': 'magic', expected one of");
    RawModel act(make_model(kLstm2Amq));
    act.meta["act_method"] = "ternary";
    EXPECT_MESSAGE(model_error(act.bytes()), "metadata 'act_method': 'ternary'");
    RawModel missing(make_model(kLstm2Amq));
    missing.meta.erase("iters");
    EXPECT_MESSAGE(model_error(missing.bytes()), "metadata 'iters': missing");
    RawModel hidden(make_model(kLstm2Amq));
    hidden.meta.erase("hidden_size");
    EXPECT_MESSAGE(model_error(hidden.bytes()), "metadata 'hidden_size': missing");
    RawModel kw_in_float(make_model(kLstm2));
    kw_in_float.meta["k_w"] = "2";
    EXPECT_MESSAGE(model_error(kw_in_float.bytes()), "metadata 'k_w': only an .amq");

    ModelSpec lm = kLstm2;
    lm.vocab = 5;
    RawModel vocab(make_model(lm));
    vocab.meta["vocab"] = "a\nb\nc";
    EXPECT_MESSAGE(model_error(vocab.bytes()), "metadata 'vocab': has 3 words", "vocab_size is 5");
    RawModel tied(make_model(lm));
    tied.meta["tied"] = "true";
    EXPECT_MESSAGE(model_error(tied.bytes()),
                   "metadata 'tied': true needs input_size == hidden_size");
    RawModel layers(make_model(kLstm2));
    layers.meta["layers"] = "1";
    EXPECT_MESSAGE(model_error(layers.bytes()), "tensor 'weight_ih_l1': unexpected",
                   "1-layer lstm");
    RawModel amq_vocab(make_model(ModelSpec{Arch::gru, 1, 8, 8, 6, false, true, true, 2, false}));
    amq_vocab.meta.erase("vocab_size");
    EXPECT_MESSAGE(model_error(amq_vocab.bytes()), "metadata 'vocab_size': missing");
}

TEST(ModelMalformed, BidirectionalAndProjection) {
    // A lone reverse tensor makes a bidirectional model, whose other tensors are missing.
    RawModel raw(make_model(kLstm2));
    RawTensor copy = raw.at("weight_ih_l0");
    copy.name = "weight_ih_l0_reverse";
    raw.tensors.push_back(copy);
    EXPECT_MESSAGE(model_error(raw.bytes()), "tensor 'weight_hh_l0_reverse': missing",
                   "2-layer bidirectional lstm");
    raw.meta["bidirectional"] = "false";
    EXPECT_MESSAGE(model_error(raw.bytes()), "tensor 'weight_ih_l0_reverse': unexpected");
    raw.meta["bidirectional"] = "yes";
    EXPECT_MESSAGE(model_error(raw.bytes()), "metadata 'bidirectional': 'yes', expected 'true'");
    RawModel amq(make_model(kLstm2Amq));
    RawTensor planes = amq.at("weight_hh_l1.planes");
    planes.name = "weight_hh_l1_reverse.planes";
    amq.tensors.push_back(planes);
    EXPECT_MESSAGE(model_error(amq.bytes()), "tensor 'weight_hh_l1_reverse.planes': unexpected");

    // proj_size as PyTorch allows it: 0 < proj_size < hidden_size, LSTM only.
    const ModelSpec proj_spec{Arch::lstm, 2, 13, 21, 0, false, true, false, 2, false, false, 11};
    RawModel proj(make_model(proj_spec));
    proj.meta["proj_size"] = "21";
    EXPECT_MESSAGE(model_error(proj.bytes()),
                   "metadata 'proj_size': 21, expected less than hidden_size 21");
    proj.meta["proj_size"] = "12";
    EXPECT_MESSAGE(model_error(proj.bytes()), "tensor 'weight_hh_l0'", "expected", "[84, 12]");
    EXPECT_MESSAGE(model_error(plain_with_matrix(make_model(proj_spec), "weight_hr_l0", 21, 21)),
                   "tensor 'weight_hr_l0': proj_size 21, expected less than hidden_size 21");
    RawModel gru(make_model(ModelSpec{Arch::gru, 1, 13, 21, 0, false, true, false, 2, false}));
    gru.meta["proj_size"] = "5";
    EXPECT_MESSAGE(model_error(gru.bytes()), "metadata 'proj_size': 5 in a GRU");
    RawModel lm(make_model(ModelSpec{Arch::gru, 1, 8, 8, 6, false, true, false, 2, false}));
    lm.meta["bidirectional"] = "true";
    EXPECT_MESSAGE(model_error(lm.bytes()), "metadata 'bidirectional': true in a language model");

    // save_model refuses what load_model would.
    ModelFile bad = make_model(proj_spec);
    bad.shape.proj_size = 21;
    EXPECT_THROW(model_writer(bad), std::invalid_argument);
    bad.shape.proj_size = 11;
    bad.shape.arch = Arch::gru;
    EXPECT_THROW(model_writer(bad), std::invalid_argument);
}

TEST(ModelMalformed, FormatVersion) {
    for (const char *v : {"2", "2.0", "10"}) {
        RawModel raw(make_model(kLstm2Amq));
        raw.meta["format_version"] = v;
        EXPECT_MESSAGE(model_error(raw.bytes()),
                       "metadata 'format_version': " + std::string(v) + " is newer than this amq");
    }
    for (const char *v : {"1.0", "1.7", "01"}) {
        RawModel raw(make_model(kLstm2Amq));
        raw.meta["format_version"] = v;
        EXPECT_NO_THROW(load_model_from_bytes(raw.bytes(), kLabel)) << v;
    }
    for (const char *v : {"one", "1.", "", "1x"}) {
        RawModel raw(make_model(kLstm2));
        raw.meta["format_version"] = v;
        EXPECT_MESSAGE(model_error(raw.bytes()), "metadata 'format_version': '" + std::string(v) +
                                                     "' is not a version number");
    }
    RawModel zero(make_model(kLstm2));
    zero.meta["format_version"] = "0";
    EXPECT_MESSAGE(model_error(zero.bytes()), "metadata 'format_version': 0 is not a version");
    RawModel missing(make_model(kLstm2));
    missing.meta.erase("format_version");
    EXPECT_MESSAGE(model_error(missing.bytes()), "metadata 'format_version': missing");
}

TEST(ModelMalformed, FloatAndQuantizedMixups) {
    // An input matrix stored as float in an .amq.
    RawModel amq(make_model(kLstm2Amq));
    amq.erase("weight_ih_l0.planes");
    amq.erase("weight_ih_l0.alpha");
    RawModel fl(make_model(kLstm2));
    amq.tensors.push_back(fl.at("weight_ih_l0"));
    EXPECT_MESSAGE(model_error(amq.bytes()), "tensor 'weight_ih_l0': stored as float");
    // Planes in a float model.
    RawModel f(make_model(kLstm2));
    f.erase("weight_hh_l0");
    f.tensors.push_back(RawModel(make_model(kLstm2Amq)).at("weight_hh_l0.planes"));
    EXPECT_MESSAGE(model_error(f.bytes()),
                   "tensor 'weight_hh_l0.planes': quantized matrix in a "
                   "float model");
    // A quantized bias.
    RawModel b(make_model(kLstm2Amq));
    b.at("bias_ih_l0").name = "bias_ih_l0.planes";
    EXPECT_MESSAGE(model_error(b.bytes()), "tensor 'bias_ih_l0.planes': only weight matrices");
    // An embedding both float and quantized.
    ModelSpec lm = kLstm2Amq;
    lm.vocab = 4;
    RawModel both(make_model(lm));
    lm.lm_quantized = true;
    RawModel q(make_model(lm));
    both.tensors.push_back(q.at("embedding.weight.planes"));
    both.tensors.push_back(q.at("embedding.weight.alpha"));
    EXPECT_MESSAGE(model_error(both.bytes()), "tensor 'embedding.weight': stored both");
    // Unknown tensors are refused, not ignored.
    RawModel extra(make_model(kLstm2));
    RawTensor t = extra.at("bias_ih_l0");
    t.name = "encoder.weight";
    extra.tensors.push_back(t);
    EXPECT_MESSAGE(model_error(extra.bytes()), "tensor 'encoder.weight': unexpected");
}

// Random byte flips in a valid .amq: each load either succeeds or throws a
// FormatError (never another exception, a crash or a huge allocation).
TEST(ModelMalformed, RandomCorruption) {
    ModelSpec spec = kLstm2Amq;
    spec.layers = 1;
    spec.input = 9;
    spec.hidden = 5;
    spec.vocab = 3;
    const std::vector<uint8_t> good = model_writer(make_model(spec)).bytes();
    uint64_t header = 0;
    std::memcpy(&header, good.data(), 8);
    std::mt19937 rng(123);
    int errors = 0;
    for (int i = 0; i < 3000; ++i) {
        std::vector<uint8_t> bad = good;
        const int flips = 1 + int(rng() % 3);
        for (int f = 0; f < flips; ++f) {
            // Mostly in the size field and header, where the structure is.
            const size_t at = rng() % 4 ? rng() % (8 + header) : rng() % bad.size();
            bad[at] = uint8_t(rng() % 4 ? rng() : bad[at] ^ (1u << (rng() % 8)));
        }
        try {
            load_model_from_bytes(bad, kLabel);
        } catch (const FormatError &e) {
            ++errors;
            EXPECT_EQ(std::string(e.what()).rfind(kLabel + ": ", 0), 0u) << e.what();
        } catch (const std::exception &e) {
            ADD_FAILURE() << "not a FormatError: " << e.what();
        }
    }
    EXPECT_GT(errors, 1500);
}

// ---------------------------------------------------------------------------
// ModelFile: save refuses what load would refuse

std::string save_error(const ModelFile &m) {
    try {
        model_writer(m);
    } catch (const std::invalid_argument &e) {
        return e.what();
    }
    ADD_FAILURE() << "save_model accepted the model";
    return "";
}

TEST(ModelSave, RefusesInconsistentModels) {
    auto expect = [](const ModelFile &m, const std::string &part) {
        const std::string e = save_error(m);
        EXPECT_NE(e.find(part), std::string::npos) << e;
    };
    ModelFile m = make_model(kLstm2Amq);
    m.quant["weight_hh_l0"].planes.back() |= 1ull << 63;
    expect(m, "quant['weight_hh_l0'].planes: padding bits set");

    m = make_model(kLstm2Amq);
    m.quant["weight_ih_l1"].alpha[3] = std::numeric_limits<float>::quiet_NaN();
    expect(m, "quant['weight_ih_l1'].alpha: alpha[1, 1] = nan is not finite");

    m = make_model(kLstm2Amq);
    m.k_w = 5;
    expect(m, "k_w is 5");

    m = make_model(kLstm2Amq);
    m.quant["weight_ih_l1"].k = 1;
    expect(m, "quant['weight_ih_l1'] is k=1");

    m = make_model(kLstm2Amq);
    m.quant["weight_ih_l1"].planes.pop_back();
    expect(m, "quant['weight_ih_l1'] holds");

    m = make_model(kLstm2Amq);
    m.quant.erase("weight_hh_l1");
    m.floats["weight_hh_l1"] = make_model(kLstm2).floats["weight_hh_l1"];
    expect(m, "quant['weight_hh_l1'] is missing");

    m = make_model(kLstm2);
    m.floats["bias_ih_l1"].data.pop_back();
    expect(m, "floats['bias_ih_l1'] holds 515 values");

    m = make_model(kLstm2);
    m.floats.erase("bias_hh_l0");
    expect(m, "floats['bias_hh_l0'] is missing");

    m = make_model(kLstm2);
    m.floats["extra"] = {{1}, {1.0f}};
    expect(m, "floats['extra'] is not a tensor");

    m = make_model(kLstm2);
    m.metadata["arch"] = "gru";
    expect(m, "metadata key 'arch'");

    ModelSpec lm = kLstm2;
    lm.vocab = 4;
    m = make_model(lm);
    m.vocab.pop_back();
    expect(m, "vocab has 3 words");
    m = make_model(lm);
    m.vocab[2] = "a\nb";
    expect(m, "vocab word 2");
    m = make_model(lm);
    m.shape.tied = true;
    expect(m, "tied needs input_size == hidden_size");
}

}  // namespace
}  // namespace amq
