#include "amq/model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>

namespace amq {
namespace {

constexpr int kFormatVersion = 1;
// Largest value of an integer metadata key: sizes beyond it are no real model,
// and products of sizes stay far from overflowing 64 bits.
constexpr uint64_t kMaxMetaInt = std::numeric_limits<int32_t>::max();

const std::vector<std::string> kMethods = {"alternating", "greedy",   "refined",
                                           "uniform",     "balanced", "ternary"};
const std::vector<std::string> kActMethods = {"alternating", "greedy"};
// Metadata keys of the format; ModelFile::metadata holds the others.
const std::vector<std::string> kFloatKeys = {
    "format",     "format_version", "arch", "layers",        "input_size", "hidden_size",
    "vocab_size", "vocab",          "tied", "bidirectional", "proj_size"};
const std::vector<std::string> kAmqKeys = {"k_w",   "k_a",        "method",
                                           "iters", "act_method", "act_iters"};

bool contains(const std::vector<std::string> &v, const std::string &s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string> &v, const std::string &sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
}

bool starts_with(const std::string &s, const std::string &prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

std::string layer_name(const char *base, int layer) { return base + std::to_string(layer); }

std::string tensor_name(const char *base, int layer, int direction) {
    return layer_tensor_name(base, layer, direction);
}

uint64_t last_word_mask(size_t cols) { return cols % 64 ? ~0ull >> (64 - cols % 64) : ~0ull; }

// "2-layer lstm (input 37, hidden 129, with biases; language model, vocab 50, tied)"
std::string describe(const RnnShape &s) {
    std::string d = std::to_string(s.layers) + "-layer " +
                    (s.bidirectional ? "bidirectional " : "") + arch_name(s.arch) + " (input " +
                    std::to_string(s.input_size) + ", hidden " + std::to_string(s.hidden_size) +
                    (s.proj_size ? ", proj " + std::to_string(s.proj_size) : "") +
                    (s.bias ? ", with biases" : ", no biases");
    if (s.lm())
        d += "; language model, vocab " + std::to_string(s.vocab_size) +
             (s.tied ? ", tied" : ", untied");
    return d + ")";
}

// How a tensor of the layout may be stored.
enum class Store { float_only, quantized, either };

struct Slot {
    std::string name;
    std::vector<int64_t> shape;  // float shape ([rows, cols] for a matrix)
    Store store;
    bool required;
};

// Every tensor a model of `shape` has, in file order.
std::vector<Slot> layout(const RnnShape &s, bool amq) {
    const int64_t gh = int64_t(s.gates()) * int64_t(s.hidden_size);
    const Store matrix = amq ? Store::either : Store::float_only;
    std::vector<Slot> v;
    const Store rnn = amq ? Store::quantized : Store::float_only;
    for (const MatrixInfo &m : weight_matrices(s, true)) {
        const std::vector<int64_t> dims = {int64_t(m.rows), int64_t(m.cols)};
        const bool lm = m.layer < 0;
        v.push_back({m.name, dims, lm ? matrix : rnn, true});
        // PyTorch's order: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr.
        if (s.bias && m.role == MatrixRole::recurrent)
            for (const char *base : {"bias_ih", "bias_hh"})
                v.push_back(
                    {tensor_name(base, m.layer, m.direction), {gh}, Store::float_only, true});
    }
    if (s.lm()) v.push_back({"decoder.bias", {int64_t(s.vocab_size)}, Store::float_only, false});
    return v;
}

// A problem of a quantized matrix: which of its tensors (".planes" or
// ".alpha") and what is wrong with it.
struct QuantProblem {
    std::string suffix, what;
};

std::optional<QuantProblem> check_quant_values(const QuantTensor &q) {
    const size_t words = q.words();
    const uint64_t pad = ~last_word_mask(q.cols);
    if (words > 0 && pad != 0)
        for (size_t i = 0; i < size_t(q.k); ++i)
            for (size_t r = 0; r < q.rows; ++r)
                if (q.planes[(i * q.rows + r) * words + words - 1] & pad)
                    return QuantProblem{".planes", "padding bits set in plane " +
                                                       std::to_string(i) + ", row " +
                                                       std::to_string(r) + " (bits past column " +
                                                       std::to_string(q.cols - 1) + " must be 0)"};
    for (size_t r = 0; r < q.rows; ++r)
        for (size_t i = 0; i < size_t(q.k); ++i) {
            const float a = q.alpha[r * size_t(q.k) + i];
            if (!std::isfinite(a))
                return QuantProblem{".alpha", "alpha[" + std::to_string(r) + ", " +
                                                  std::to_string(i) + "] = " + std::to_string(a) +
                                                  " is not finite"};
        }
    return std::nullopt;
}

// What is wrong with a shape's options (a bidirectional or projected network),
// and the metadata key it is about; nullopt when nothing.
std::optional<std::pair<std::string, std::string>> option_problem(const RnnShape &s) {
    if (s.proj_size > 0 && s.arch != Arch::lstm)
        return std::pair<std::string, std::string>{
            "proj_size", std::to_string(s.proj_size) + " in a GRU (only an LSTM has projections)"};
    if (s.proj_size >= s.hidden_size && s.proj_size > 0)
        return std::pair<std::string, std::string>{
            "proj_size", std::to_string(s.proj_size) + ", expected less than hidden_size " +
                             std::to_string(s.hidden_size) + " (as PyTorch)"};
    if (s.bidirectional && s.lm())
        return std::pair<std::string, std::string>{
            "bidirectional",
            "true in a language model (it runs step by step, the reverse direction needs the "
            "whole sequence)"};
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// Loading

// Parses metadata strings strictly: the whole value must be the number.
class MetaParser {
public:
    explicit MetaParser(const st::Reader &r) : r_(r) {}

    bool has(const std::string &key) const { return r_.has_meta(key); }

    uint64_t uint(const std::string &key, uint64_t min, uint64_t max) const {
        const std::string &v = r_.meta(key);
        uint64_t n = 0;
        bool ok = !v.empty() && v.size() <= 19;
        for (char c : v) {
            if (c < '0' || c > '9') ok = false;
            if (ok) n = n * 10 + uint64_t(c - '0');
        }
        if (!ok) r_.fail_meta(key, "'" + v + "' is not a non-negative integer");
        if (n < min || n > max)
            r_.fail_meta(key, v + " is out of range (" + std::to_string(min) + ".." +
                                  std::to_string(max) + ")");
        return n;
    }
    bool boolean(const std::string &key) const {
        const std::string &v = r_.meta(key);
        if (v == "true") return true;
        if (v == "false") return false;
        r_.fail_meta(key, "'" + v + "', expected 'true' or 'false'");
    }
    std::string one_of(const std::string &key, const std::vector<std::string> &allowed) const {
        const std::string &v = r_.meta(key);
        if (!contains(allowed, v))
            r_.fail_meta(key, "'" + v + "', expected one of " + join(allowed, ", "));
        return v;
    }
    // "1", "1.0", "1.2.3": refuses another major version.
    void version(const std::string &key) const {
        const std::string &v = r_.meta(key);
        size_t i = 0, major_digits = 0;
        uint64_t major = 0;
        for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i, ++major_digits)
            if (major_digits < 9) major = major * 10 + uint64_t(v[i] - '0');
        bool ok = major_digits > 0 && major_digits <= 9;
        while (ok && i < v.size()) {  // .minor parts
            size_t digits = 0;
            ok = v[i++] == '.';
            for (; ok && i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) ++digits;
            ok = ok && digits > 0;
        }
        if (!ok) r_.fail_meta(key, "'" + v + "' is not a version number");
        if (major > uint64_t(kFormatVersion))
            r_.fail_meta(key, v + " is newer than this amq reads (" +
                                  std::to_string(kFormatVersion) + "); update amq");
        if (major < uint64_t(kFormatVersion))
            r_.fail_meta(key, v + " is not a version of the format (expected " +
                                  std::to_string(kFormatVersion) + ")");
    }

private:
    const st::Reader &r_;
};

// A float tensor that shape derivation reads: F32 of rank 2.
const st::TensorInfo &float_matrix(const st::Reader &r, const std::string &name,
                                   const std::string &role) {
    const st::TensorInfo *t = r.find(name);
    if (!t) {
        if (r.find(name + ".planes") || r.find(name + ".alpha"))
            r.fail_tensor(name + ".planes",
                          "quantized matrix in a float model (metadata 'format' is not 'amq')");
        r.fail_tensor(name, "missing (" + role + ")");
    }
    if (t->dtype != st::DType::F32 || t->shape.size() != 2)
        r.fail_tensor(name, std::string("dtype ") + st::dtype_name(t->dtype) + " shape " +
                                st::shape_str(t->shape) + ", expected an F32 matrix (" + role +
                                ")");
    return *t;
}

// The network's sizes: from the metadata, and in a float model, where a key is
// absent, from the tensors.
RnnShape read_shape(const st::Reader &r, const MetaParser &meta, bool amq) {
    RnnShape s;
    auto required = [&](const std::string &key) {
        if (amq && !meta.has(key)) r.fail_meta(key, "missing (an .amq file must have it)");
    };
    for (const char *key : {"arch", "layers", "input_size", "hidden_size"}) required(key);

    // A projected LSTM: weight_hr_l0 [proj_size, hidden_size].
    const st::TensorInfo *hr = amq ? nullptr : r.find("weight_hr_l0");
    if (hr) float_matrix(r, "weight_hr_l0", "its rows give proj_size");
    if (meta.has("hidden_size")) {
        s.hidden_size = meta.uint("hidden_size", 1, kMaxMetaInt);
    } else if (hr) {
        if (hr->shape[1] == 0) r.fail_tensor("weight_hr_l0", "has 0 columns (hidden_size 0)");
        s.hidden_size = size_t(hr->shape[1]);
    } else {
        const st::TensorInfo &hh = float_matrix(r, "weight_hh_l0", "its columns give hidden_size");
        if (hh.shape[1] == 0) r.fail_tensor("weight_hh_l0", "has 0 columns (hidden_size 0)");
        s.hidden_size = size_t(hh.shape[1]);
    }
    if (meta.has("proj_size")) {
        s.proj_size = meta.uint("proj_size", 0, kMaxMetaInt);
    } else if (hr) {
        if (hr->shape[0] == 0) r.fail_tensor("weight_hr_l0", "has 0 rows (proj_size 0)");
        s.proj_size = size_t(hr->shape[0]);
    }
    if (meta.has("bidirectional"))
        s.bidirectional = meta.boolean("bidirectional");
    else
        s.bidirectional = r.find("weight_ih_l0_reverse") || r.find("weight_ih_l0_reverse.planes") ||
                          r.find("weight_ih_l0_reverse.alpha");
    if (meta.has("arch")) {
        s.arch = meta.one_of("arch", {"lstm", "gru"}) == "lstm" ? Arch::lstm : Arch::gru;
    } else {
        const st::TensorInfo &hh = float_matrix(r, "weight_hh_l0", "its rows give the arch");
        const uint64_t rows = uint64_t(hh.shape[0]), h = s.hidden_size;
        if (rows == 4 * h)
            s.arch = Arch::lstm;
        else if (rows == 3 * h)
            s.arch = Arch::gru;
        else
            r.fail_tensor("weight_hh_l0", "shape " + st::shape_str(hh.shape) + " is neither [4 x " +
                                              std::to_string(h) + ", " + std::to_string(h) +
                                              "] (LSTM) nor [3 x " + std::to_string(h) + ", " +
                                              std::to_string(h) + "] (GRU)");
    }
    if (meta.has("input_size")) {
        s.input_size = meta.uint("input_size", 1, kMaxMetaInt);
    } else {
        const st::TensorInfo &ih = float_matrix(r, "weight_ih_l0", "its columns give input_size");
        if (ih.shape[1] == 0) r.fail_tensor("weight_ih_l0", "has 0 columns (input_size 0)");
        s.input_size = size_t(ih.shape[1]);
    }
    if (meta.has("layers")) {
        s.layers = int(meta.uint("layers", 1, kMaxMetaInt));
        // Each layer has at least two tensors (more when quantized or with biases).
        if (uint64_t(s.layers) > r.tensors().size() / 2)
            r.fail_meta("layers", std::to_string(s.layers) + " layers need at least " +
                                      std::to_string(2 * uint64_t(s.layers)) +
                                      " tensors, the file has " +
                                      std::to_string(r.tensors().size()));
    } else {
        while (r.find(layer_name("weight_ih_l", s.layers))) ++s.layers;
        if (s.layers == 0) float_matrix(r, "weight_ih_l0", "the input matrix of layer 0");
    }

    const bool has_embedding = r.find("embedding.weight") || r.find("embedding.weight.planes") ||
                               r.find("embedding.weight.alpha");
    if (meta.has("vocab_size")) {
        s.vocab_size = meta.uint("vocab_size", 0, kMaxMetaInt);
    } else if (has_embedding) {
        if (amq) r.fail_meta("vocab_size", "missing (the file has an embedding)");
        const st::TensorInfo &e = float_matrix(r, "embedding.weight", "its rows give vocab_size");
        if (e.shape[0] == 0) r.fail_tensor("embedding.weight", "has 0 rows (vocab_size 0)");
        s.vocab_size = size_t(e.shape[0]);
    }
    if (meta.has("tied")) {
        s.tied = meta.boolean("tied");
        if (s.tied && !s.lm())
            r.fail_meta("tied", "true in a model without an embedding (no vocab_size)");
    } else {
        s.tied = s.lm() && !r.find("decoder.weight") && !r.find("decoder.weight.planes") &&
                 !r.find("decoder.weight.alpha");
    }
    if (s.tied && s.input_size != s.h_size())
        r.fail_meta("tied",
                    "true needs input_size == " +
                        std::string(s.proj_size ? "proj_size" : "hidden_size") +
                        " (the decoder reuses embedding.weight), got input_size " +
                        std::to_string(s.input_size) + " and " +
                        (s.proj_size ? "proj_size " : "hidden_size ") +
                        std::to_string(s.h_size()));
    s.bias = r.find("bias_ih_l0") || r.find("bias_hh_l0");
    if (const auto p = option_problem(s)) {
        if (meta.has(p->first)) r.fail_meta(p->first, p->second);
        r.fail_tensor(p->first == "proj_size" ? "weight_hr_l0" : "weight_ih_l0_reverse",
                      p->first + " " + p->second);
    }
    return s;
}

void read_vocab(const st::Reader &r, ModelFile &m) {
    if (!r.has_meta("vocab")) return;
    const std::string &v = r.meta("vocab");
    if (!m.shape.lm()) r.fail_meta("vocab", "present in a model without an embedding");
    const size_t words = size_t(std::count(v.begin(), v.end(), '\n')) + 1;
    if (words != m.shape.vocab_size)
        r.fail_meta("vocab", "has " + std::to_string(words) +
                                 " words ('\\n'-separated), vocab_size is " +
                                 std::to_string(m.shape.vocab_size));
    m.vocab.reserve(words);
    size_t start = 0;
    for (size_t i = 0; i < words; ++i) {
        const size_t end = std::min(v.find('\n', start), v.size());
        m.vocab.push_back(v.substr(start, end - start));
        start = end + 1;
    }
}

QuantTensor read_quant(const st::Reader &r, const std::string &name, int k, size_t rows,
                       size_t cols) {
    QuantTensor q;
    q.k = k;
    q.rows = rows;
    q.cols = cols;
    q.planes = r.u64(name + ".planes", {int64_t(k), int64_t(rows), int64_t(q.words())});
    q.alpha = r.f32(name + ".alpha", {int64_t(rows), int64_t(k)});
    if (std::optional<QuantProblem> p = check_quant_values(q))
        r.fail_tensor(name + p->suffix, p->what);
    return q;
}

}  // namespace

const char *arch_name(Arch arch) { return arch == Arch::lstm ? "lstm" : "gru"; }

ModelFile load_model(const st::Reader &r) {
    const MetaParser meta(r);
    const std::string format = r.meta_or("format", "");
    // A state_dict saved without metadata, or by PyTorch tools that write
    // format "pt", is a float model described by its tensors alone.
    const bool plain = format.empty() || format == "pt";
    if (!plain && format != "amq" && format != "amq-float")
        r.fail_meta("format", "'" + format + "', expected 'amq' or 'amq-float'");
    const bool amq = format == "amq";
    if (!plain || meta.has("format_version")) meta.version("format_version");

    ModelFile m;
    m.shape = read_shape(r, meta, amq);
    read_vocab(r, m);
    if (amq) {
        for (const char *key : {"k_w", "k_a", "method", "iters"})
            if (!meta.has(key)) r.fail_meta(key, "missing (an .amq file must have it)");
        m.k_w = int(meta.uint("k_w", 1, 4));
        m.k_a = int(meta.uint("k_a", 1, 4));
        m.method = meta.one_of("method", kMethods);
        m.iters = int(meta.uint("iters", 0, kMaxMetaInt));
        if (meta.has("act_method")) m.act_method = meta.one_of("act_method", kActMethods);
        if (meta.has("act_iters")) m.act_iters = int(meta.uint("act_iters", 0, kMaxMetaInt));
    } else {
        for (const std::string &key : kAmqKeys)
            if (meta.has(key)) r.fail_meta(key, "only an .amq (metadata 'format' = 'amq') has it");
    }
    for (const auto &[key, value] : r.metadata())
        if (!contains(kFloatKeys, key) && !contains(kAmqKeys, key)) m.metadata[key] = value;

    std::set<std::string> used;
    for (const Slot &slot : layout(m.shape, amq)) {
        const std::string &name = slot.name;
        const std::string planes = name + ".planes", alpha = name + ".alpha";
        const bool has_float = r.find(name) != nullptr;
        const bool has_quant = r.find(planes) || r.find(alpha);
        if (slot.store == Store::float_only && !has_float && has_quant)
            r.fail_tensor(r.find(planes) ? planes : alpha,
                          amq ? "only weight matrices may be quantized"
                              : "quantized matrix in a float model (metadata 'format' is not "
                                "'amq')");
        if (slot.store == Store::quantized && has_float)
            r.fail_tensor(name,
                          "stored as float; in an .amq the input and recurrent matrices are "
                          "quantized (" +
                              planes + ", " + alpha + ")");
        if (has_float && has_quant)
            r.fail_tensor(name, "stored both as float and quantized (" + planes + ")");

        if (slot.store == Store::quantized || (slot.store == Store::either && has_quant)) {
            m.quant[name] =
                read_quant(r, name, m.k_w, size_t(slot.shape[0]), size_t(slot.shape[1]));
            used.insert(planes);
            used.insert(alpha);
        } else if (has_float) {
            m.floats[name] = {slot.shape, r.f32(name, slot.shape)};
            used.insert(name);
        } else if (slot.required) {
            const bool bias = starts_with(name, "bias_");
            r.fail_tensor(name, bias ? "missing (biases come in pairs bias_ih_lL, bias_hh_lL, in "
                                       "every layer or in none)"
                                     : "missing (the model is a " + describe(m.shape) + ")");
        }
    }
    for (const st::TensorInfo &t : r.tensors())
        if (!used.count(t.name))
            r.fail_tensor(t.name, "unexpected: no tensor of this name in a " +
                                      std::string(amq ? ".amq " : "float ") + "model that is a " +
                                      describe(m.shape));
    return m;
}

ModelFile load_model(const std::string &path) { return load_model(st::Reader::open(path)); }

ModelFile load_model_from_bytes(std::vector<uint8_t> bytes, const std::string &label) {
    return load_model(st::Reader::from_bytes(std::move(bytes), label));
}

// ---------------------------------------------------------------------------
// Saving

namespace {

[[noreturn]] void invalid(const std::string &what) {
    throw std::invalid_argument("amq::save_model: " + what);
}

// Refuses what load_model would refuse.
void check_for_save(const ModelFile &m) {
    const RnnShape &s = m.shape;
    if (s.layers < 1) invalid("shape.layers is " + std::to_string(s.layers) + ", expected >= 1");
    for (auto [field, v] : {std::pair<const char *, size_t>{"input_size", s.input_size},
                            {"hidden_size", s.hidden_size}})
        if (v < 1 || v > kMaxMetaInt)
            invalid(std::string("shape.") + field + " is " + std::to_string(v) + ", expected 1.." +
                    std::to_string(kMaxMetaInt));
    if (s.vocab_size > kMaxMetaInt)
        invalid("shape.vocab_size is " + std::to_string(s.vocab_size) +
                ", expected <= " + std::to_string(kMaxMetaInt));
    if (s.tied && !s.lm()) invalid("shape.tied is set but vocab_size is 0");
    if (s.tied && s.input_size != s.h_size())
        invalid(std::string("shape.tied needs input_size == ") +
                (s.proj_size ? "proj_size" : "hidden_size") + ", got " +
                std::to_string(s.input_size) + " and " + std::to_string(s.h_size()));
    if (s.proj_size > kMaxMetaInt)
        invalid("shape.proj_size is " + std::to_string(s.proj_size) + ", expected <= " +
                std::to_string(kMaxMetaInt));
    if (const auto p = option_problem(s)) invalid("shape." + p->first + " is " + p->second);
    if (!m.vocab.empty()) {
        if (m.vocab.size() != s.vocab_size)
            invalid("vocab has " + std::to_string(m.vocab.size()) + " words, shape.vocab_size is " +
                    std::to_string(s.vocab_size));
        for (size_t i = 0; i < m.vocab.size(); ++i)
            if (m.vocab[i].find('\n') != std::string::npos)
                invalid("vocab word " + std::to_string(i) + " contains '\\n'");
    }
    const bool amq = m.quantized();
    if (amq) {
        if (m.k_w < 1 || m.k_w > 4) invalid("k_w is " + std::to_string(m.k_w) + ", expected 1..4");
        if (m.k_a < 1 || m.k_a > 4) invalid("k_a is " + std::to_string(m.k_a) + ", expected 1..4");
        if (!contains(kMethods, m.method))
            invalid("method '" + m.method + "', expected one of " + join(kMethods, ", "));
        if (!m.act_method.empty() && !contains(kActMethods, m.act_method))
            invalid("act_method '" + m.act_method + "', expected one of " +
                    join(kActMethods, ", "));
        if (m.iters < 0 || m.act_iters < 0) invalid("iters and act_iters must be >= 0");
    }
    for (const auto &kv : m.metadata)
        if (contains(kFloatKeys, kv.first) || contains(kAmqKeys, kv.first))
            invalid(
                "metadata key '" + kv.first +
                "' is written from the fields of ModelFile; remove it from ModelFile::metadata");

    std::set<std::string> used;
    for (const Slot &slot : layout(s, amq)) {
        const std::string &name = slot.name;
        const auto f = m.floats.find(name);
        const auto q = m.quant.find(name);
        const bool has_float = f != m.floats.end(), has_quant = q != m.quant.end();
        if (has_float && has_quant) invalid("'" + name + "' is in both floats and quant");
        if (slot.store == Store::quantized && !has_quant)
            invalid("quant['" + name +
                    "'] is missing: an .amq quantizes every input and "
                    "recurrent matrix");
        if (slot.store == Store::float_only && has_quant)
            invalid("quant['" + name + "']: only weight matrices may be quantized");
        if (has_quant) {
            const QuantTensor &t = q->second;
            const size_t rows = size_t(slot.shape[0]), cols = size_t(slot.shape[1]);
            if (t.k != m.k_w || t.rows != rows || t.cols != cols)
                invalid("quant['" + name + "'] is k=" + std::to_string(t.k) + " [" +
                        std::to_string(t.rows) + ", " + std::to_string(t.cols) +
                        "], expected k=" + std::to_string(m.k_w) + " [" + std::to_string(rows) +
                        ", " + std::to_string(cols) + "]");
            if (t.planes.size() != size_t(t.k) * rows * t.words() ||
                t.alpha.size() != rows * size_t(t.k))
                invalid("quant['" + name + "'] holds " + std::to_string(t.planes.size()) +
                        " plane words and " + std::to_string(t.alpha.size()) +
                        " scales, expected " + std::to_string(size_t(t.k) * rows * t.words()) +
                        " and " + std::to_string(rows * size_t(t.k)));
            if (std::optional<QuantProblem> p = check_quant_values(t))
                invalid("quant['" + name + "']" + p->suffix + ": " + p->what);
        } else if (has_float) {
            const FloatTensor &t = f->second;
            if (t.shape != slot.shape)
                invalid("floats['" + name + "'] has shape " + st::shape_str(t.shape) +
                        ", expected " + st::shape_str(slot.shape));
            size_t n = 1;
            for (int64_t d : t.shape) n *= size_t(d);
            if (t.data.size() != n)
                invalid("floats['" + name + "'] holds " + std::to_string(t.data.size()) +
                        " values, shape " + st::shape_str(t.shape) + " has " + std::to_string(n));
        } else if (slot.required) {
            invalid("floats['" + name + "'] is missing (the model is a " + describe(s) + ")");
        }
        used.insert(name);
    }
    for (const auto &kv : m.floats)
        if (!used.count(kv.first))
            invalid("floats['" + kv.first + "'] is not a tensor of a " + describe(s));
    for (const auto &kv : m.quant)
        if (!used.count(kv.first))
            invalid("quant['" + kv.first + "'] is not a weight matrix of a " + describe(s));
}

}  // namespace

st::Writer model_writer(const ModelFile &m) {
    check_for_save(m);
    const RnnShape &s = m.shape;
    const bool amq = m.quantized();
    st::Writer w;
    w.set_metadata("format", amq ? "amq" : "amq-float");
    w.set_metadata("format_version", std::to_string(kFormatVersion));
    w.set_metadata("arch", arch_name(s.arch));
    w.set_metadata("layers", std::to_string(s.layers));
    w.set_metadata("input_size", std::to_string(s.input_size));
    w.set_metadata("hidden_size", std::to_string(s.hidden_size));
    if (s.bidirectional) w.set_metadata("bidirectional", "true");
    if (s.proj_size) w.set_metadata("proj_size", std::to_string(s.proj_size));
    if (s.lm()) {
        w.set_metadata("vocab_size", std::to_string(s.vocab_size));
        w.set_metadata("tied", s.tied ? "true" : "false");
        if (!m.vocab.empty()) w.set_metadata("vocab", join(m.vocab, "\n"));
    }
    if (amq) {
        w.set_metadata("k_w", std::to_string(m.k_w));
        w.set_metadata("k_a", std::to_string(m.k_a));
        w.set_metadata("method", m.method);
        w.set_metadata("iters", std::to_string(m.iters));
        w.set_metadata("act_method", m.act_method.empty() ? "alternating" : m.act_method);
        w.set_metadata("act_iters", std::to_string(m.act_iters));
    }
    for (const auto &[key, value] : m.metadata) w.set_metadata(key, value);

    for (const Slot &slot : layout(s, amq)) {
        if (auto q = m.quant.find(slot.name); q != m.quant.end()) {
            const QuantTensor &t = q->second;
            w.add(slot.name + ".planes", st::DType::U64,
                  {int64_t(t.k), int64_t(t.rows), int64_t(t.words())}, t.planes.data(),
                  t.planes.size() * sizeof(uint64_t));
            w.add(slot.name + ".alpha", st::DType::F32, {int64_t(t.rows), int64_t(t.k)},
                  t.alpha.data(), t.alpha.size() * sizeof(float));
        } else if (auto f = m.floats.find(slot.name); f != m.floats.end()) {
            w.add(slot.name, st::DType::F32, f->second.shape, f->second.data.data(),
                  f->second.data.size() * sizeof(float));
        }
    }
    return w;
}

void save_model(const std::string &path, const ModelFile &model) {
    model_writer(model).write(path);
}

// ---------------------------------------------------------------------------
// Names

std::string layer_tensor_name(const std::string &base, int layer, int direction) {
    return base + "_l" + std::to_string(layer) + (direction ? "_reverse" : "");
}

std::vector<MatrixInfo> weight_matrices(const RnnShape &s, bool include_lm) {
    const size_t gh = size_t(s.gates()) * s.hidden_size;
    std::vector<MatrixInfo> v;
    for (int l = 0; l < s.layers; ++l)
        for (int d = 0; d < s.directions(); ++d) {
            v.push_back({tensor_name("weight_ih", l, d), gh, s.layer_input(l), MatrixRole::input,
                         l, d});
            v.push_back(
                {tensor_name("weight_hh", l, d), gh, s.h_size(), MatrixRole::recurrent, l, d});
            if (s.proj_size)
                v.push_back({tensor_name("weight_hr", l, d), s.proj_size, s.hidden_size,
                             MatrixRole::projection, l, d});
        }
    if (include_lm && s.lm()) {
        v.push_back({"embedding.weight", s.vocab_size, s.input_size, MatrixRole::embedding});
        if (!s.tied)
            v.push_back({"decoder.weight", s.vocab_size, s.h_size(), MatrixRole::decoder});
    }
    return v;
}

std::vector<std::string> weight_matrix_names(const RnnShape &s, bool include_lm) {
    std::vector<std::string> v;
    for (const MatrixInfo &m : weight_matrices(s, include_lm)) v.push_back(m.name);
    return v;
}

std::vector<std::string> rnn_matrix_names(const RnnShape &s) { return weight_matrix_names(s, false); }

std::pair<size_t, size_t> matrix_dims(const RnnShape &s, const std::string &name) {
    for (const MatrixInfo &m : weight_matrices(s, true))
        if (m.name == name) return {m.rows, m.cols};
    throw std::invalid_argument("amq::matrix_dims: '" + name + "' is not a weight matrix of a " +
                                describe(s));
}

}  // namespace amq
