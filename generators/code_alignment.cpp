// Every kernel function starts on a 64-byte boundary (LLVM's
// -align-all-functions=6, through Halide's HL_LLVM_ARGS, set before the
// generators run). Halide aligns a function to 16 bytes and its loops within
// it, so where the linker places a kernel decided how its hot loops fall on
// the CPU's 64-byte fetch blocks: on the Zen 5 VM the same lstm_step kernel
// took 0.42 or 0.49 us per step at H = 64 (amq_bench_rnn) depending only on
// what else was linked before it. Aligned, a kernel runs the same in every
// build and every application that links it.
#include <cstdlib>
#include <string>

namespace {

const bool kAlignedKernelFunctions = [] {
    const std::string flag = "-align-all-functions=6";
    const char *user = std::getenv("HL_LLVM_ARGS");
    std::string args = user ? user : "";
    if (args.find("-align-all-functions") != std::string::npos) return false;  // the user's
    args = args.empty() ? flag : args + " " + flag;
    return setenv("HL_LLVM_ARGS", args.c_str(), 1) == 0;
}();

}  // namespace
