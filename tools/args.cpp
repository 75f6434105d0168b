// Argument parsers shared by the subcommands.
#include <climits>
#include <cstdint>
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

std::string shape_str(size_t rows, size_t cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

std::string bits_str(int w, int a) { return spec::bits_name(w, a); }

}  // namespace amq::tools
