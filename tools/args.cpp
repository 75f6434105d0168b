// Argument parsers shared by the subcommands.
#include <climits>
#include <cstdint>
#include <algorithm>
#include <cstdlib>

#include "commands.h"

namespace amq::tools {
namespace {

// A decimal integer in 1..max made of digits only; false otherwise.
bool parse_positive(const std::string &s, unsigned long long max, unsigned long long &out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
    out = std::strtoull(s.c_str(), nullptr, 10);
    return out >= 1 && out <= max;
}

}  // namespace

spec::Shape parse_shape(const std::string &option, const std::string &text) {
    size_t x = text.find_first_of("xX");
    unsigned long long r = 0, c = 0;
    if (x == std::string::npos || !parse_positive(text.substr(0, x), INT_MAX, r) ||
        !parse_positive(text.substr(x + 1), INT_MAX, c))
        throw UsageError(option + " '" + text +
                         "': expected ROWSxCOLS, each an integer in 1..2147483647, e.g. 4096x1024");
    return {size_t(r), size_t(c)};
}

spec::Bits parse_bits(const std::string &option, const std::string &text) {
    // W2A3 (the spelling amq writes; w2a3 as in kernel names too), or the alias 2x3.
    std::string s = text;
    if (s.size() == 4 && (s[0] == 'w' || s[0] == 'W') && (s[2] == 'a' || s[2] == 'A'))
        s = std::string(1, s[1]) + "x" + s[3];
    unsigned long long w = 0, a = 0;
    size_t x = s.find_first_of("xX");
    if (x == std::string::npos || !parse_positive(s.substr(0, x), 4, w) ||
        !parse_positive(s.substr(x + 1), 4, a))
        throw UsageError(option + " '" + text +
                         "': expected W<w>A<a> (weight and activation bits, each 1..4), e.g. "
                         "W2A2 (or the alias 2x2)");
    return {int(w), int(a)};
}

void check_range(const std::string &option, long long value, long long lo, long long hi) {
    if (value >= lo && value <= hi) return;
    std::string expected = hi == LLONG_MAX ? "at least " + std::to_string(lo)
                                           : std::to_string(lo) + ".." + std::to_string(hi);
    throw UsageError(option + " " + std::to_string(value) + ": expected " + expected);
}

std::map<std::string, MatrixBits> parse_bits_for(const std::vector<std::string> &items,
                                                 const RnnShape &shape) {
    const std::vector<std::string> names = weight_matrix_names(shape, true);
    std::map<std::string, MatrixBits> out;
    for (const std::string &item : items) {
        const std::string opt = "--bits-for " + item;
        const size_t eq = item.rfind('=');
        if (eq == std::string::npos || eq == 0)
            throw UsageError(opt + ": expected NAME=WxA[:ACT_METHOD], e.g. decoder.weight=4x4");
        const std::string name = item.substr(0, eq);
        std::string bits = item.substr(eq + 1), act;
        if (const size_t colon = bits.find(':'); colon != std::string::npos) {
            act = bits.substr(colon + 1);
            bits = bits.substr(0, colon);
            const std::vector<std::string> &methods = act_method_names();
            if (std::find(methods.begin(), methods.end(), act) == methods.end())
                throw UsageError(opt + ": activation method '" + act + "', expected alternating, "
                                 "greedy or ternary");
        }
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            std::string list;
            for (const std::string &n : names) list += (list.empty() ? "" : ", ") + n;
            throw UsageError(opt + ": the model has no weight matrix '" + name + "' (its matrices: " +
                             list + ")");
        }
        if (out.count(name)) throw UsageError(opt + ": '" + name + "' is given twice");
        const spec::Bits b = parse_bits("--bits-for " + name, bits);
        out[name] = {b.w, b.a, act};
    }
    return out;
}

std::string shape_str(size_t rows, size_t cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

std::string bits_str(int w, int a) { return spec::bits_name(w, a); }

}  // namespace amq::tools
