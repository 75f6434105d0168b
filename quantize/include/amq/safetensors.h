// safetensors containers: an 8-byte little-endian header size N, N bytes of JSON
// header, then the raw little-endian tensor bytes (docs/MODEL_FORMAT.md).
//
// Reader checks every rule of the format when it opens a file, so that any
// input, however malformed, gives a FormatError naming the file and the tensor
// or metadata key, never a read past the buffer or an allocation larger than
// the file justifies. Writer produces files any safetensors reader opens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace amq::st {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

// "F32", "U64", ... as spelled in the header.
const char *dtype_name(DType dtype);
// Bytes per element.
size_t dtype_size(DType dtype);
// The dtype spelled `name`, or nothing when it is not a safetensors dtype.
std::optional<DType> parse_dtype(const std::string &name);

// The largest header the reader accepts (the safetensors limit).
constexpr uint64_t kMaxHeaderSize = 100'000'000;

// A file that breaks the format. The message names the file label and the
// tensor or metadata key at fault, and what was expected.
struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets into the data section

    uint64_t numel() const;  // product of the shape (checked on open: fits)
    uint64_t nbytes() const { return end - begin; }
};

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t> &shape);

// The checked header of a file (every rule Reader checks but the data itself).
struct Header {
    std::map<std::string, std::string> metadata;
    std::vector<TensorInfo> tensors;  // in the order of their data
    uint64_t data_start = 0;          // file offset of the data section
    uint64_t file_size = 0;
};

// Reads and checks the size field and the header of the file at `path`, not the
// tensor data, so that a file larger than memory can then be read a piece at a
// time (read_at). Throws std::runtime_error when it cannot be read and
// FormatError (the same messages as Reader::open) when it breaks the format.
Header read_header(const std::string &path);

// Reads `nbytes` bytes at file offset `offset` of `path`; throws
// std::runtime_error naming the path when they cannot be read.
void read_at(const std::string &path, uint64_t offset, void *out, size_t nbytes);

class Reader {
public:
    // Reads and checks the file. Throws std::runtime_error when it cannot be
    // read and FormatError when it breaks the format.
    static Reader open(const std::string &path);
    // Checks `bytes` as a file; `label` stands for the file name in messages.
    static Reader from_bytes(std::vector<uint8_t> bytes, std::string label);

    const std::string &label() const { return label_; }

    const std::map<std::string, std::string> &metadata() const { return metadata_; }
    bool has_meta(const std::string &key) const { return metadata_.count(key) != 0; }
    // The value of `key`; throws FormatError naming the key when it is absent.
    const std::string &meta(const std::string &key) const;
    std::string meta_or(const std::string &key, const std::string &fallback) const;

    // Tensor names in the order of their data in the file.
    std::vector<std::string> names() const;
    const std::vector<TensorInfo> &tensors() const { return tensors_; }
    // nullptr when there is no tensor `name`.
    const TensorInfo *find(const std::string &name) const;
    // Throws FormatError naming `name` when it is absent.
    const TensorInfo &tensor(const std::string &name) const;
    // The tensor's bytes (nbytes() of them; not aligned).
    const uint8_t *data(const TensorInfo &info) const;

    // The tensor's elements, after checking its dtype and that its shape is
    // `expected_shape`; throws FormatError naming the tensor otherwise.
    std::vector<float> f32(const std::string &name,
                           const std::vector<int64_t> &expected_shape) const;
    std::vector<uint64_t> u64(const std::string &name,
                              const std::vector<int64_t> &expected_shape) const;
    std::vector<int64_t> i64(const std::string &name,
                             const std::vector<int64_t> &expected_shape) const;

    // "<label>: tensor '<name>': <what>" as a FormatError.
    [[noreturn]] void fail_tensor(const std::string &name, const std::string &what) const;
    // "<label>: metadata '<key>': <what>" as a FormatError.
    [[noreturn]] void fail_meta(const std::string &key, const std::string &what) const;
    // "<label>: <what>" as a FormatError.
    [[noreturn]] void fail(const std::string &what) const;

private:
    Reader() = default;
    void parse();
    const TensorInfo &checked(const std::string &name, DType dtype,
                              const std::vector<int64_t> &expected_shape) const;

    std::string label_;
    std::vector<uint8_t> bytes_;
    size_t data_start_ = 0;
    std::map<std::string, std::string> metadata_;
    std::vector<TensorInfo> tensors_;      // sorted by begin
    std::map<std::string, size_t> index_;  // name -> position in tensors_
};

class Writer {
public:
    // Throws std::invalid_argument for a value that is not valid UTF-8.
    void set_metadata(const std::string &key, const std::string &value);
    // Copies `nbytes` bytes of `data` as tensor `name`. Throws
    // std::invalid_argument naming the tensor when the name is taken or
    // reserved, the shape has a negative or overflowing size, or nbytes does
    // not match the shape and dtype.
    void add(const std::string &name, DType dtype, const std::vector<int64_t> &shape,
             const void *data, size_t nbytes);

    // The whole file: header padded with spaces to a multiple of 8 bytes, then
    // the tensors in the order they were added.
    std::vector<uint8_t> bytes() const;
    // Writes the file to a temporary file in the same directory, then renames
    // it over `path`, so `path` is never seen half written. Throws
    // std::runtime_error naming the path on failure.
    void write(const std::string &path) const;

private:
    std::string header() const;

    struct Entry {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        std::vector<uint8_t> data;
    };
    std::map<std::string, std::string> metadata_;
    std::vector<Entry> entries_;
};

// Writes a file whose tensors are declared up front (name, dtype, shape) and
// whose data then arrive in pieces, each tensor's bytes at any offsets, so that
// a file larger than memory is written with a buffer of one piece. As
// Writer::write, the file goes to a temporary file renamed over `path` by
// finish(); a FileWriter destroyed unfinished removes its temporary file.
class FileWriter {
public:
    struct Tensor {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
    };
    // Creates the temporary file and writes the header. Throws
    // std::invalid_argument for a tensor Writer::add would refuse,
    // std::runtime_error naming the path when the file cannot be created.
    FileWriter(const std::string &path, const std::map<std::string, std::string> &metadata,
               const std::vector<Tensor> &tensors);
    ~FileWriter();
    FileWriter(const FileWriter &) = delete;
    FileWriter &operator=(const FileWriter &) = delete;

    // Writes `nbytes` bytes of tensor `index` (in the order declared) from its
    // byte `offset` on; each byte of each tensor must be written once. Throws
    // std::invalid_argument for a range outside the tensor, std::runtime_error
    // naming the path when the write fails.
    void write(size_t index, uint64_t offset, const void *data, size_t nbytes);
    // Checks that every tensor was written in full (std::logic_error naming the
    // tensor otherwise), then syncs and renames the file over `path`.
    void finish();

private:
    std::string path_, tmp_;
    int fd_ = -1;
    struct Placed {
        std::string name;
        uint64_t begin, nbytes, written;  // begin: file offset
    };
    std::vector<Placed> tensors_;
};

}  // namespace amq::st
