// The `amq` command-line tool: one add_<name>_command per subcommand (cmd_<name>.cpp),
// registered by amq_main.cpp, plus the argument parsers the subcommands share.
#pragma once

#include <CLI/CLI.hpp>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include "amq/model.h"
#include "amq/spec.h"

namespace amq::tools {

// A bad argument value found after CLI11's parsing: main prints "amq: <message>"
// and exits with 2, like CLI11's own parse errors.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void add_info_command(CLI::App &app);
void add_quantize_command(CLI::App &app);
void add_run_commands(CLI::App &app);  // run, eval
void add_tune_command(CLI::App &app);
void add_generate_command(CLI::App &app);
#ifdef AMQ_HAVE_BENCH
void add_bench_command(CLI::App &app);
#endif

// amq tune --steps (tools/cmd_tune_steps.cpp, built with the benchmarks).
struct StepTuneArgs {
    std::string cells, hidden, bits;  // comma-separated lists; "" = the defaults
    size_t input = 0, batch = 1;      // input 0: the hidden size
    int rounds = 15, repeats = 3, threads = 1, steps = 100;
    std::string schedules;  // "" = schedules/<cpu-id>.json
    bool json = false;
};
// Times the step problems of `model` (when not null) or of the grid in `a`, and
// writes them to the schedules file's "steps". Throws UsageError for bad options.
void run_tune_steps(const StepTuneArgs &a, const ModelFile *model);

// "4096x1024" -> {4096, 1024}; throws UsageError naming `option` and the value.
spec::Shape parse_shape(const std::string &option, const std::string &text);
// "W2A3" (or "w2a3", or the alias "2x3") -> {w = 2, a = 3}, each in 1..4;
// throws UsageError.
spec::Bits parse_bits(const std::string &option, const std::string &text);
// --bits-for NAME=WxA[:ACT_METHOD] items (e.g. decoder.weight=4x4,
// weight_hh_l0=2x2:ternary) for a model of `shape`; act_method "" when not
// given. Throws UsageError naming the item: a matrix the model lacks (listing
// its matrices), bits outside 1..4, an unknown method, a matrix given twice.
std::map<std::string, MatrixBits> parse_bits_for(const std::vector<std::string> &items,
                                                 const RnnShape &shape);
// Throws UsageError unless lo <= value <= hi.
void check_range(const std::string &option, long long value, long long lo, long long hi);

std::string shape_str(size_t rows, size_t cols);  // "4096x1024"
std::string bits_str(int w, int a);               // "W2A2" (spec::bits_name)

}  // namespace amq::tools
