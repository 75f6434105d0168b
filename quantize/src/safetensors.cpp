#include "amq/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "amq/write_all.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; amq reads it in place on little-endian hosts");

namespace amq::st {
namespace {

struct DTypeInfo {
    DType dtype;
    const char *name;
    size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},   {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeInfo &info_of(DType dtype) {
    for (const DTypeInfo &d : kDTypes)
        if (d.dtype == dtype) return d;
    throw std::invalid_argument("amq::st: invalid DType value " +
                                std::to_string(static_cast<int>(dtype)));
}

// Product of the shape times `elem_size`, or nothing when a size is negative
// or the product does not fit in 64 bits.
std::optional<uint64_t> checked_bytes(const std::vector<int64_t> &shape, uint64_t elem_size) {
    uint64_t n = elem_size;
    for (int64_t d : shape) {
        if (d < 0) return std::nullopt;
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
    }
    return n;
}

std::string range_str(uint64_t begin, uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Parses the JSON header straight into tensor entries and metadata, so that
// duplicate keys are seen (a DOM keeps only the last one) and nothing but the
// fields amq needs is stored. Every problem throws a FormatError at once.
class HeaderParser : public nlohmann::json_sax<nlohmann::json> {
public:
    HeaderParser(const std::string &label, uint64_t data_size)
        : label_(label), data_size_(data_size) {}

    std::map<std::string, std::string> metadata;
    std::vector<TensorInfo> tensors;

    bool null() override { return scalar("null"); }
    bool boolean(bool) override { return scalar("a boolean"); }
    bool number_integer(number_integer_t v) override {
        if (v >= 0) return number_unsigned(static_cast<number_unsigned_t>(v));
        if (state_ == State::shape) fail_tensor("shape has a negative size " + std::to_string(v));
        if (state_ == State::offsets)
            fail_tensor("data_offsets has a negative offset " + std::to_string(v));
        return scalar("a negative number");
    }
    bool number_unsigned(number_unsigned_t v) override {
        if (state_ == State::shape) {
            if (v > static_cast<uint64_t>(INT64_MAX))
                fail_tensor("shape size " + std::to_string(v) + " is too large (max 2^63 - 1)");
            shape_.push_back(static_cast<int64_t>(v));
            return true;
        }
        if (state_ == State::offsets) {
            if (offsets_.size() == 2) fail_tensor("data_offsets has more than 2 values");
            offsets_.push_back(v);
            return true;
        }
        return scalar("a number");
    }
    bool number_float(number_float_t, const string_t &text) override {
        if (state_ == State::shape)
            fail_tensor("shape holds " + text + ", expected non-negative integers");
        if (state_ == State::offsets)
            fail_tensor("data_offsets holds " + text + ", expected non-negative integers");
        return scalar("a number");
    }
    bool string(string_t &v) override {
        if (state_ == State::meta_value) {
            metadata.emplace(key_, std::move(v));
            state_ = State::meta;
            return true;
        }
        if (state_ == State::dtype) {
            std::optional<DType> d = parse_dtype(v);
            if (!d) fail_tensor("unknown dtype '" + v + "'");
            dtype_ = *d;
            state_ = State::entry;
            return true;
        }
        return scalar("a string");
    }
    bool binary(binary_t &) override { return scalar("binary data"); }

    bool start_object(std::size_t) override {
        switch (state_) {
            case State::root_start:
                state_ = State::root;
                return true;
            case State::meta_start:
                state_ = State::meta;
                return true;
            case State::entry_start:
                state_ = State::entry;
                seen_.clear();
                shape_.clear();
                offsets_.clear();
                return true;
            case State::skip:
                ++skip_depth_;
                return true;
            default:
                wrong_value("an object");
        }
    }
    bool start_array(std::size_t) override {
        switch (state_) {
            case State::shape_start:
                state_ = State::shape;
                return true;
            case State::offsets_start:
                state_ = State::offsets;
                return true;
            case State::skip:
                ++skip_depth_;
                return true;
            default:
                wrong_value("an array");
        }
    }
    bool end_object() override {
        switch (state_) {
            case State::root:
                state_ = State::done;
                return true;
            case State::meta:
                state_ = State::root;
                return true;
            case State::entry:
                finish_entry();
                return true;
            case State::skip:
                return end_skipped();
            default:
                return true;  // the parser only ends objects it started
        }
    }
    bool end_array() override {
        switch (state_) {
            case State::shape:
                state_ = State::entry;
                return true;
            case State::offsets:
                if (offsets_.size() != 2)
                    fail_tensor("data_offsets has " + std::to_string(offsets_.size()) +
                                " values, expected [begin, end]");
                state_ = State::entry;
                return true;
            case State::skip:
                return end_skipped();
            default:
                return true;
        }
    }
    bool key(string_t &k) override {
        switch (state_) {
            case State::root:
                if (!names_.insert(k).second) {
                    if (k == "__metadata__") fail("header has __metadata__ twice");
                    name_ = k;
                    fail_tensor("duplicate tensor name");
                }
                if (k == "__metadata__") {
                    state_ = State::meta_start;
                } else {
                    name_ = k;
                    state_ = State::entry_start;
                }
                return true;
            case State::meta:
                if (metadata.count(k)) fail_meta(k, "duplicate key");
                key_ = k;
                state_ = State::meta_value;
                return true;
            case State::entry:
                if (!seen_.insert(k).second) fail_tensor("duplicate field '" + k + "'");
                if (k == "dtype") {
                    state_ = State::dtype;
                } else if (k == "shape") {
                    state_ = State::shape_start;
                } else if (k == "data_offsets") {
                    state_ = State::offsets_start;
                } else {
                    // Other fields are not part of the format: skip their values.
                    state_ = State::skip;
                    skip_depth_ = 0;
                }
                return true;
            default:
                return true;  // keys inside a skipped value
        }
    }
    bool parse_error(std::size_t, const std::string &,
                     const nlohmann::detail::exception &ex) override {
        // Drop the library's "[json.exception.parse_error.101] " prefix.
        std::string what = ex.what();
        const size_t bracket = what.find("] ");
        if (bracket != std::string::npos) what = what.substr(bracket + 2);
        fail("header is not valid JSON: " + what);
    }

    bool complete() const { return state_ == State::done; }

private:
    enum class State {
        root_start,     // before the header object
        root,           // in the header object: keys are tensor names
        meta_start,     // value of __metadata__
        meta,           // in __metadata__
        meta_value,     // value of a metadata key
        entry_start,    // value of a tensor name
        entry,          // in a tensor entry
        dtype,          // value of "dtype"
        shape_start,    // value of "shape"
        shape,          // in "shape"
        offsets_start,  // value of "data_offsets"
        offsets,        // in "data_offsets"
        skip,           // value of an unknown entry field
        done,
    };

    [[noreturn]] void fail(const std::string &what) const {
        throw FormatError(label_ + ": " + what);
    }
    [[noreturn]] void fail_tensor(const std::string &what) const {
        fail("tensor '" + name_ + "': " + what);
    }
    [[noreturn]] void fail_meta(const std::string &key, const std::string &what) const {
        fail("metadata '" + key + "': " + what);
    }

    // A value of JSON type `kind` arrived where the format wants another.
    [[noreturn]] void wrong_value(const std::string &kind) const {
        switch (state_) {
            case State::root_start:
                fail("header is " + kind + ", expected a JSON object");
            case State::meta_start:
                fail("__metadata__ is " + kind + ", expected an object of strings");
            case State::meta_value:
                fail_meta(key_, "value is " + kind + ", expected a string");
            case State::entry_start:
                fail_tensor("entry is " + kind +
                            ", expected an object with dtype, shape and data_offsets");
            case State::dtype:
                fail_tensor("dtype is " + kind + ", expected a string");
            case State::shape_start:
                fail_tensor("shape is " + kind + ", expected an array");
            case State::shape:
                fail_tensor("shape holds " + kind + ", expected non-negative integers");
            case State::offsets_start:
                fail_tensor("data_offsets is " + kind + ", expected an array [begin, end]");
            case State::offsets:
                fail_tensor("data_offsets holds " + kind + ", expected non-negative integers");
            default:
                fail("header has an unexpected " + kind);
        }
    }

    bool scalar(const std::string &kind) {
        if (state_ != State::skip) wrong_value(kind);
        if (skip_depth_ == 0) state_ = State::entry;
        return true;
    }

    bool end_skipped() {
        if (--skip_depth_ == 0) state_ = State::entry;
        return true;
    }

    void finish_entry() {
        for (const char *field : {"dtype", "shape", "data_offsets"})
            if (!seen_.count(field)) fail_tensor(std::string("missing '") + field + "'");
        TensorInfo t;
        t.name = name_;
        t.dtype = dtype_;
        t.shape = shape_;
        t.begin = offsets_[0];
        t.end = offsets_[1];
        const std::string where = "data_offsets " + range_str(t.begin, t.end);
        if (t.end < t.begin) fail_tensor(where + " are reversed (end before begin)");
        if (t.end > data_size_)
            fail_tensor(where + " end past the data section (" + std::to_string(data_size_) +
                        " bytes)");
        const std::optional<uint64_t> need = checked_bytes(t.shape, dtype_size(t.dtype));
        if (!need)
            fail_tensor("shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) +
                        " has more bytes than fit in 64 bits");
        if (*need != t.nbytes())
            fail_tensor(where + " hold " + std::to_string(t.nbytes()) + " bytes, but shape " +
                        shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
                        std::to_string(*need));
        tensors.push_back(std::move(t));
        state_ = State::root;
    }

    const std::string &label_;
    const uint64_t data_size_;
    State state_ = State::root_start;
    std::set<std::string> names_;  // top-level keys seen
    std::string key_;              // current metadata key
    std::string name_;             // current tensor
    std::set<std::string> seen_;   // fields of the current tensor
    DType dtype_ = DType::F32;
    std::vector<int64_t> shape_;
    std::vector<uint64_t> offsets_;
    int64_t skip_depth_ = 0;
};

}  // namespace

const char *dtype_name(DType dtype) { return info_of(dtype).name; }
size_t dtype_size(DType dtype) { return info_of(dtype).size; }
std::optional<DType> parse_dtype(const std::string &name) {
    for (const DTypeInfo &d : kDTypes)
        if (name == d.name) return d.dtype;
    return std::nullopt;
}

uint64_t TensorInfo::numel() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

std::string shape_str(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// ---------------------------------------------------------------------------
// Reader

Reader Reader::from_bytes(std::vector<uint8_t> bytes, std::string label) {
    Reader r;
    r.label_ = std::move(label);
    r.bytes_ = std::move(bytes);
    r.parse();
    return r;
}

namespace {

[[noreturn]] void fail_label(const std::string &label, const std::string &what) {
    throw FormatError(label + ": " + what);
}

// Checks the size field and the header of a file of `file_size` bytes whose
// first bytes are at `bytes`: `available` of them, which must include the whole
// header whenever the size field is within the limits.
Header parse_header(const std::string &label, const uint8_t *bytes, uint64_t available,
                    uint64_t file_size) {
    if (file_size < 8)
        fail_label(label, "file is " + std::to_string(file_size) +
                              " bytes, too short for the 8-byte header size");
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes, 8);
    if (header_size > kMaxHeaderSize)
        fail_label(label, "header size " + std::to_string(header_size) + " is over the limit of " +
                              std::to_string(kMaxHeaderSize) + " bytes");
    if (header_size > file_size - 8)
        fail_label(label, "header size " + std::to_string(header_size) +
                              " runs past the end of the file (" + std::to_string(file_size - 8) +
                              " bytes after the size field)");
    if (available < 8 + header_size)
        throw std::logic_error("amq::st: parse_header given too few bytes");
    Header h;
    h.file_size = file_size;
    h.data_start = 8 + header_size;
    const uint64_t data_size = file_size - h.data_start;

    HeaderParser parser(label, data_size);
    const char *first = reinterpret_cast<const char *>(bytes) + 8;
    // The JSON parser would take a NUL byte for the end of its input: refuse it
    // first (safetensors pads the header with spaces, nothing else).
    if (const void *nul = std::memchr(first, 0, size_t(header_size)))
        fail_label(label, "header byte at file offset " +
                              std::to_string(8 + (static_cast<const char *>(nul) - first)) +
                              " is NUL (0x00); the header is JSON followed only by spaces (0x20)");
    nlohmann::json::sax_parse(first, first + header_size, &parser);
    if (!parser.complete()) fail_label(label, "header is not a complete JSON object");
    // After the object the parser allows any JSON whitespace: only spaces may follow.
    uint64_t last = header_size;
    while (last > 0 && first[last - 1] == ' ') --last;
    if (last > 0 && first[last - 1] != '}') {
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02x", unsigned(uint8_t(first[last - 1])));
        fail_label(label, "header byte at file offset " + std::to_string(8 + last - 1) + " is " +
                              byte +
                              " after the JSON object; only spaces (0x20) may follow it");
    }
    h.metadata = std::move(parser.metadata);
    h.tensors = std::move(parser.tensors);

    // The tensors must cover the data section exactly: in order of their
    // offsets, each begins where the previous ended, from 0 to the end.
    std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo &a, const TensorInfo &b) {
        return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    auto fail_tensor = [&](const std::string &name, const std::string &what) {
        fail_label(label, "tensor '" + name + "': " + what);
    };
    uint64_t pos = 0;
    const TensorInfo *prev = nullptr;
    for (const TensorInfo &t : h.tensors) {
        const std::string where = "data_offsets " + range_str(t.begin, t.end);
        if (t.begin < pos)
            fail_tensor(t.name, where + " overlap tensor '" + prev->name + "' " +
                                    range_str(prev->begin, prev->end));
        if (t.begin > pos)
            fail_tensor(t.name, where + " leave a hole of " + std::to_string(t.begin - pos) +
                                    " bytes " +
                                    (prev ? "after tensor '" + prev->name + "' (ends at " +
                                                std::to_string(pos) + ")"
                                          : std::string("at the start of the data section")) +
                                    "; the data section must be contiguous");
        pos = t.end;
        prev = &t;
    }
    if (pos != data_size)
        fail_label(label, "the data section has " + std::to_string(data_size) +
                              " bytes but the tensors cover only " + std::to_string(pos) +
                              "; the data section must hold nothing but the tensors");
    return h;
}

// Opens `path` for reading as a regular file; returns the descriptor and size.
int open_regular(const std::string &path, uint64_t &size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    std::string error;
    if (fstat(fd, &st) != 0)
        error = std::string("cannot stat: ") + std::strerror(errno);
    else if (!S_ISREG(st.st_mode))
        error = "not a regular file";
    if (!error.empty()) {
        ::close(fd);
        throw std::runtime_error(path + ": " + error);
    }
    size = static_cast<uint64_t>(st.st_size);
    return fd;
}

// Reads n bytes at `offset`; "" or what went wrong.
std::string pread_all(int fd, uint64_t offset, void *out, size_t n) {
    auto *p = static_cast<uint8_t *>(out);
    while (n > 0) {
        const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return std::string("cannot read: ") + std::strerror(errno);
        if (got == 0) return "file shrank while being read";
        p += got;
        offset += static_cast<uint64_t>(got);
        n -= static_cast<size_t>(got);
    }
    return "";
}

}  // namespace

Header read_header(const std::string &path) {
    uint64_t size = 0;
    const int fd = open_regular(path, size);
    std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(size, 8)));
    std::string error = pread_all(fd, 0, head.data(), head.size());
    if (error.empty() && head.size() == 8) {
        uint64_t header_size = 0;
        std::memcpy(&header_size, head.data(), 8);
        if (header_size <= kMaxHeaderSize && header_size <= size - 8) {
            head.resize(8 + static_cast<size_t>(header_size));
            error = pread_all(fd, 8, head.data() + 8, static_cast<size_t>(header_size));
        }
    }
    ::close(fd);
    if (!error.empty()) throw std::runtime_error(path + ": " + error);
    return parse_header(path, head.data(), head.size(), size);
}

void read_at(const std::string &path, uint64_t offset, void *out, size_t nbytes) {
    uint64_t size = 0;
    const int fd = open_regular(path, size);
    const std::string error = pread_all(fd, offset, out, nbytes);
    ::close(fd);
    if (!error.empty()) throw std::runtime_error(path + ": " + error);
}

void Reader::parse() {
    Header h = parse_header(label_, bytes_.data(), bytes_.size(), bytes_.size());
    data_start_ = static_cast<size_t>(h.data_start);
    metadata_ = std::move(h.metadata);
    tensors_ = std::move(h.tensors);
    for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

Reader Reader::open(const std::string &path) {
    uint64_t size = 0;
    const int fd = open_regular(path, size);
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    const std::string error = pread_all(fd, 0, bytes.data(), bytes.size());
    ::close(fd);
    if (!error.empty()) throw std::runtime_error(path + ": " + error);
    return from_bytes(std::move(bytes), path);
}

const std::string &Reader::meta(const std::string &key) const {
    auto it = metadata_.find(key);
    if (it == metadata_.end()) fail_meta(key, "missing");
    return it->second;
}

std::string Reader::meta_or(const std::string &key, const std::string &fallback) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? fallback : it->second;
}

std::vector<std::string> Reader::names() const {
    std::vector<std::string> v;
    v.reserve(tensors_.size());
    for (const TensorInfo &t : tensors_) v.push_back(t.name);
    return v;
}

const TensorInfo *Reader::find(const std::string &name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo &Reader::tensor(const std::string &name) const {
    const TensorInfo *t = find(name);
    if (!t) fail_tensor(name, "missing");
    return *t;
}

const uint8_t *Reader::data(const TensorInfo &info) const {
    return bytes_.data() + data_start_ + info.begin;
}

const TensorInfo &Reader::checked(const std::string &name, DType dtype,
                                  const std::vector<int64_t> &expected_shape) const {
    const TensorInfo &t = tensor(name);
    if (t.dtype != dtype)
        fail_tensor(
            name, std::string("dtype ") + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
    if (t.shape != expected_shape)
        fail_tensor(name,
                    "shape " + shape_str(t.shape) + ", expected " + shape_str(expected_shape));
    return t;
}

namespace {
template <typename T>
std::vector<T> copy_out(const uint8_t *src, const TensorInfo &t) {
    std::vector<T> v(t.nbytes() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), src, v.size() * sizeof(T));
    return v;
}
}  // namespace

std::vector<float> Reader::f32(const std::string &name,
                               const std::vector<int64_t> &expected_shape) const {
    const TensorInfo &t = checked(name, DType::F32, expected_shape);
    return copy_out<float>(data(t), t);
}

std::vector<uint64_t> Reader::u64(const std::string &name,
                                  const std::vector<int64_t> &expected_shape) const {
    const TensorInfo &t = checked(name, DType::U64, expected_shape);
    return copy_out<uint64_t>(data(t), t);
}

std::vector<int64_t> Reader::i64(const std::string &name,
                                 const std::vector<int64_t> &expected_shape) const {
    const TensorInfo &t = checked(name, DType::I64, expected_shape);
    return copy_out<int64_t>(data(t), t);
}

void Reader::fail(const std::string &what) const { throw FormatError(label_ + ": " + what); }
void Reader::fail_tensor(const std::string &name, const std::string &what) const {
    fail("tensor '" + name + "': " + what);
}
void Reader::fail_meta(const std::string &key, const std::string &what) const {
    fail("metadata '" + key + "': " + what);
}

// ---------------------------------------------------------------------------
// Writer

namespace {
// Throws std::invalid_argument when `s` is not valid UTF-8 (JSON strings must be).
void check_utf8(const std::string &s, const std::string &what) {
    try {
        (void)nlohmann::json(s).dump();
    } catch (const nlohmann::json::exception &) {
        throw std::invalid_argument("amq::st::Writer: " + what + " is not valid UTF-8");
    }
}
}  // namespace

void Writer::set_metadata(const std::string &key, const std::string &value) {
    check_utf8(key, "metadata key '" + key + "'");
    check_utf8(value, "metadata '" + key + "' value");
    metadata_[key] = value;
}

void Writer::add(const std::string &name, DType dtype, const std::vector<int64_t> &shape,
                 const void *data, size_t nbytes) {
    const std::string where = "amq::st::Writer: tensor '" + name + "': ";
    check_utf8(name, "tensor name '" + name + "'");
    if (name == "__metadata__") throw std::invalid_argument(where + "reserved name");
    for (const Entry &e : entries_)
        if (e.name == name) throw std::invalid_argument(where + "added twice");
    const std::optional<uint64_t> need = checked_bytes(shape, dtype_size(dtype));
    if (!need)
        throw std::invalid_argument(where + "shape " + shape_str(shape) +
                                    " has a negative size or too many bytes");
    if (*need != nbytes)
        throw std::invalid_argument(where + std::to_string(nbytes) + " bytes given, shape " +
                                    shape_str(shape) + " of " + dtype_name(dtype) + " needs " +
                                    std::to_string(*need));
    if (nbytes != 0 && data == nullptr) throw std::invalid_argument(where + "data is null");
    const auto *p = static_cast<const uint8_t *>(data);
    entries_.push_back({name, dtype, shape, std::vector<uint8_t>(p, p + nbytes)});
}

namespace {
struct Placement {
    const std::string &name;
    DType dtype;
    const std::vector<int64_t> &shape;
    uint64_t nbytes;
};

// The JSON header, padded with spaces to a multiple of 8 bytes.
std::string make_header(const std::map<std::string, std::string> &metadata,
                        const std::vector<Placement> &tensors) {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const Placement &e : tensors) {
        const uint64_t end = offset + e.nbytes;
        h[e.name] = {
            {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string s = h.dump();
    s.resize((s.size() + 7) / 8 * 8, ' ');
    return s;
}
}  // namespace

std::string Writer::header() const {
    std::vector<Placement> placed;
    for (const Entry &e : entries_) placed.push_back({e.name, e.dtype, e.shape, e.data.size()});
    return make_header(metadata_, placed);
}

std::vector<uint8_t> Writer::bytes() const {
    const std::string h = header();
    const uint64_t n = h.size();
    size_t total = 8 + h.size();
    for (const Entry &e : entries_) total += e.data.size();
    std::vector<uint8_t> out(total);
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, h.data(), h.size());
    size_t pos = 8 + h.size();
    for (const Entry &e : entries_) {
        if (!e.data.empty()) std::memcpy(out.data() + pos, e.data.data(), e.data.size());
        pos += e.data.size();
    }
    return out;
}

namespace {
// Creates a new temporary file beside `path`; sets `tmp` to its name.
int create_temp(const std::string &path, std::string &tmp) {
    static std::atomic<unsigned> counter{0};
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        tmp = path + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        throw std::runtime_error(path + ": cannot create " + tmp + ": " + std::strerror(errno));
    return fd;
}

// fsync, close and rename `tmp` over `path`; 0 or the errno of the failure.
int commit_temp(int fd, const std::string &tmp, const std::string &path) {
    if (::fsync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        return err;
    }
    if (::close(fd) != 0) return errno;
    if (::rename(tmp.c_str(), path.c_str()) != 0) return errno;
    return 0;
}
}  // namespace

void Writer::write(const std::string &path) const {
    const std::string h = header();
    const uint64_t n = h.size();
    std::string tmp;
    const int fd = create_temp(path, tmp);
    auto give_up = [&](int err, bool open) {
        if (open) ::close(fd);
        ::unlink(tmp.c_str());
        throw std::runtime_error(path + ": cannot write: " + std::strerror(err));
    };
    errno = EIO;  // for a write that stores nothing without setting errno
    if (!write_all(fd, &n, 8) || !write_all(fd, h.data(), h.size())) give_up(errno, true);
    for (const Entry &e : entries_)
        if (!write_all(fd, e.data.data(), e.data.size())) give_up(errno, true);
    if (const int err = commit_temp(fd, tmp, path)) give_up(err, false);
}

// ---------------------------------------------------------------------------
// FileWriter

FileWriter::FileWriter(const std::string &path, const std::map<std::string, std::string> &metadata,
                       const std::vector<Tensor> &tensors)
    : path_(path) {
    std::vector<Placement> placed;
    std::set<std::string> names;
    for (const Tensor &t : tensors) {
        const std::string where = "amq::st::FileWriter: tensor '" + t.name + "': ";
        check_utf8(t.name, "tensor name '" + t.name + "'");
        if (t.name == "__metadata__") throw std::invalid_argument(where + "reserved name");
        if (!names.insert(t.name).second) throw std::invalid_argument(where + "declared twice");
        const std::optional<uint64_t> need = checked_bytes(t.shape, dtype_size(t.dtype));
        if (!need)
            throw std::invalid_argument(where + "shape " + shape_str(t.shape) +
                                        " has a negative size or too many bytes");
        placed.push_back({t.name, t.dtype, t.shape, *need});
    }
    for (const auto &[key, value] : metadata) {
        check_utf8(key, "metadata key '" + key + "'");
        check_utf8(value, "metadata '" + key + "' value");
    }
    const std::string h = make_header(metadata, placed);
    const uint64_t n = h.size();
    uint64_t pos = 8 + n;
    for (const Placement &p : placed) {
        tensors_.push_back({p.name, pos, p.nbytes, 0});
        pos += p.nbytes;
    }
    fd_ = create_temp(path_, tmp_);
    errno = EIO;
    if (!write_all(fd_, &n, 8) || !write_all(fd_, h.data(), h.size()) ||
        ::ftruncate(fd_, static_cast<off_t>(pos)) != 0) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        ::unlink(tmp_.c_str());
        throw std::runtime_error(path_ + ": cannot write: " + std::strerror(err));
    }
}

FileWriter::~FileWriter() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(tmp_.c_str());
    }
}

void FileWriter::write(size_t index, uint64_t offset, const void *data, size_t nbytes) {
    if (fd_ < 0) throw std::logic_error("amq::st::FileWriter: write after finish()");
    if (index >= tensors_.size())
        throw std::invalid_argument("amq::st::FileWriter: no tensor " + std::to_string(index));
    Placed &t = tensors_[index];
    if (offset > t.nbytes || nbytes > t.nbytes - offset)
        throw std::invalid_argument("amq::st::FileWriter: tensor '" + t.name + "': bytes " +
                                    range_str(offset, offset + nbytes) + " outside its " +
                                    std::to_string(t.nbytes));
    const auto *p = static_cast<const uint8_t *>(data);
    uint64_t at = t.begin + offset;
    size_t left = nbytes;
    while (left > 0) {
        const ssize_t w = ::pwrite(fd_, p, left, static_cast<off_t>(at));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            throw std::runtime_error(path_ +
                                     ": cannot write: " + std::strerror(w < 0 ? errno : EIO));
        p += w;
        at += static_cast<uint64_t>(w);
        left -= static_cast<size_t>(w);
    }
    t.written += nbytes;
}

void FileWriter::finish() {
    if (fd_ < 0) throw std::logic_error("amq::st::FileWriter: finish() twice");
    for (const Placed &t : tensors_)
        if (t.written != t.nbytes)
            throw std::logic_error("amq::st::FileWriter: tensor '" + t.name +
                                   "': " + std::to_string(t.written) + " of its " +
                                   std::to_string(t.nbytes) + " bytes written");
    const int fd = fd_;
    fd_ = -1;
    if (const int err = commit_temp(fd, tmp_, path_)) {
        ::unlink(tmp_.c_str());
        throw std::runtime_error(path_ + ": cannot write: " + std::strerror(err));
    }
}

}  // namespace amq::st
